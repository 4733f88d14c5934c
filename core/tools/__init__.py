"""Function tools offered to the model: the registry and the shipped examples."""
from core.tools.registry import FunctionToolSpec, ToolRegistry, import_function

__all__ = ["FunctionToolSpec", "ToolRegistry", "import_function"]

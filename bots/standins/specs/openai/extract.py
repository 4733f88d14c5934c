"""Copy the parts of the official OpenAPI description that tests/backends/test_openai_fake.py validates against.

Source: openai/openai-openapi @ f85dbe22 (2026-08-21), openapi.json (MIT). Re-run to refresh:
    python bots/standins/specs/openai/extract.py /path/to/openapi.json
Writes components.json next to this file: the named schemas plus everything they reference.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOTS = [
    # stream events the stand-in emits
    "ResponseCreatedEvent", "ResponseInProgressEvent", "ResponseCompletedEvent", "ResponseFailedEvent",
    "ResponseIncompleteEvent", "ResponseErrorEvent", "ResponseOutputItemAddedEvent", "ResponseOutputItemDoneEvent",
    "ResponseContentPartAddedEvent", "ResponseContentPartDoneEvent", "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent", "ResponseOutputTextAnnotationAddedEvent", "ResponseRefusalDeltaEvent",
    "ResponseRefusalDoneEvent", "ResponseFunctionCallArgumentsDeltaEvent", "ResponseFunctionCallArgumentsDoneEvent",
    "ResponseCodeInterpreterCallInProgressEvent", "ResponseCodeInterpreterCallCodeDeltaEvent",
    "ResponseCodeInterpreterCallCodeDoneEvent", "ResponseCodeInterpreterCallInterpretingEvent",
    "ResponseCodeInterpreterCallCompletedEvent", "ResponseFileSearchCallInProgressEvent",
    "ResponseFileSearchCallSearchingEvent", "ResponseFileSearchCallCompletedEvent",
    "ResponseImageGenCallInProgressEvent", "ResponseImageGenCallGeneratingEvent",
    "ResponseImageGenCallCompletedEvent",
    # objects the stand-in returns
    "Response", "ConversationResource", "DeletedConversationResource", "ConversationItemList", "OpenAIFile",
    "VectorStoreObject", "VectorStoreFileObject", "VectorStoreFileBatchObject", "ContainerFileResource",
    "ContainerFileListResource", "ErrorResponse",
]


def main(src: str) -> None:
    schemas = json.loads(Path(src).read_text())["components"]["schemas"]
    keep: dict[str, object] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        text = json.dumps(schemas[name])
        for part in text.split('"#/components/schemas/')[1:]:
            todo.append(part.split('"', 1)[0])
    out = {"$comment": "Subset of openai/openai-openapi @ f85dbe22 (2026-08-21) openapi.json, MIT; "
                       "made by bots/standins/specs/openai/extract.py",
           "components": {"schemas": dict(sorted(keep.items()))}}
    Path(__file__).with_name("components.json").write_text(json.dumps(out, indent=1, sort_keys=False))
    print(f"{len(keep)} schemas")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/specs/openai/openapi.json")

"""SQLite schema: versioned migrations, applied in order by core.store.sqlite.SqliteStore.open().

Append only; never edit a released migration. user_version N means MIGRATIONS[:N] were applied.
"""
from __future__ import annotations

# Each migration is a sequence of single statements (not an executescript blob: sqlite3's executescript
# COMMITs first, which would break the "one migration, one transaction" rule). Append only; never edit a
# released migration.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: initial schema
    (
        """CREATE TABLE conversations (
            key TEXT NOT NULL,
            assistant TEXT NOT NULL,
            backend_id TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            vector_store_id TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (key, assistant)
        )""",
        """CREATE TABLE preferences (
            scope TEXT PRIMARY KEY,
            assistant TEXT NOT NULL
        )""",
        """CREATE TABLE processed_events (
            platform TEXT NOT NULL,
            event_key TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (platform, event_key)
        )""",
        "CREATE INDEX processed_events_created_at ON processed_events (created_at)",
        """CREATE TABLE files (
            sha256 TEXT NOT NULL,
            purpose TEXT NOT NULL,
            file_id TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (sha256, purpose)
        )""",
        "CREATE INDEX files_file_id ON files (file_id)",
        """CREATE TABLE usage (
            id INTEGER PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            assistant TEXT NOT NULL,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            tool_calls INTEGER NOT NULL DEFAULT 0,
            code_interpreter_sessions INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX usage_ts ON usage (ts)",
        """CREATE TABLE inflight (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,
            message_id TEXT NOT NULL,
            thread TEXT,
            started_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE knowledge_stores (
            assistant TEXT PRIMARY KEY,
            vector_store_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE knowledge_files (
            assistant TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            file_id TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            PRIMARY KEY (assistant, path)
        )""",
    ),
    # 2: preferences may expire (thread markers, platform message mappings), so the table does not grow forever
    (
        "ALTER TABLE preferences ADD COLUMN expires_at DOUBLE PRECISION",
        "CREATE INDEX preferences_expiry ON preferences (expires_at)",
    ),
    # 3: explicit tables for what the preferences table held as "scope" keys (thread markers, Discord reply
    # roots, billed containers), the platforms' last registered command payloads (was a JSON file next to the
    # database), and local conversation history for backends without server-side state. Existing rows move.
    (
        """CREATE TABLE thread_markers (
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT NOT NULL,
            assistant TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (platform, channel, thread)
        )""",
        "CREATE INDEX thread_markers_expiry ON thread_markers (expires_at)",
        """CREATE TABLE reply_roots (
            platform TEXT NOT NULL,
            message_id TEXT NOT NULL,
            root TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (platform, message_id)
        )""",
        "CREATE INDEX reply_roots_expiry ON reply_roots (expires_at)",
        """CREATE TABLE containers (
            container_id TEXT PRIMARY KEY,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE sync_digests (
            platform TEXT NOT NULL,
            scope TEXT NOT NULL,
            digest TEXT NOT NULL,
            synced_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (platform, scope)
        )""",
        """CREATE TABLE history_items (
            conversation TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data TEXT NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (conversation, seq)
        )""",
        # "thread:<platform>:<channel>:<thread>" -> (platform, channel, thread); ids hold no colons.
        """INSERT INTO thread_markers (platform, channel, thread, assistant, expires_at)
            SELECT substr(rest, 1, instr(rest, ':') - 1),
                   substr(rest, instr(rest, ':') + 1, instr(substr(rest, instr(rest, ':') + 1), ':') - 1),
                   substr(substr(rest, instr(rest, ':') + 1), instr(substr(rest, instr(rest, ':') + 1), ':') + 1),
                   assistant, COALESCE(expires_at, 1e12)
            FROM (SELECT substr(scope, 8) AS rest, assistant, expires_at FROM preferences
                  WHERE scope LIKE 'thread:%:%:%')""",
        """INSERT INTO reply_roots (platform, message_id, root, expires_at)
            SELECT 'discord', substr(scope, 13), assistant, COALESCE(expires_at, 1e12) FROM preferences
            WHERE scope LIKE 'discord:msg:%'""",
        """INSERT INTO containers (container_id, expires_at)
            SELECT substr(scope, 11), COALESCE(expires_at, 1e12) FROM preferences WHERE scope LIKE 'container:%'""",
        "DELETE FROM preferences WHERE scope LIKE 'thread:%' OR scope LIKE 'discord:msg:%'"
        " OR scope LIKE 'container:%'",
    ),
    # 4: replies in flight belong to the process streaming them; a process holds a lease while it lives, so the
    # replies of one that died are found by the others (rows from before this have no owner: orphans)
    (
        "ALTER TABLE inflight ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        """CREATE TABLE instances (
            owner TEXT PRIMARY KEY,
            lease_until DOUBLE PRECISION NOT NULL
        )""",
    ),
    # 5: the audit trail of tool calls (function and MCP tools)
    (
        """CREATE TABLE tool_calls (
            id INTEGER PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL,
            conversation TEXT NOT NULL,
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            assistant TEXT NOT NULL,
            tool TEXT NOT NULL,
            server TEXT NOT NULL,
            arguments_sha256 TEXT NOT NULL,
            approval TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            outcome TEXT NOT NULL,
            duration_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX tool_calls_at ON tool_calls (at)",
    ),
    # 6: spare conversations made ahead at the backend, recorded as they are made, so none is ever forgotten there
    (
        """CREATE TABLE spare_conversations (
            pool TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (pool, conversation_id)
        )""",
    ),
    # 7: answers (for their stop / retry / rate buttons) and the feedback people gave them
    (
        """CREATE TABLE answers (
            id TEXT PRIMARY KEY,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            thread TEXT,
            message_id TEXT NOT NULL,
            assistant TEXT NOT NULL,
            model TEXT NOT NULL,
            "user" TEXT NOT NULL,
            user_name TEXT NOT NULL,
            question TEXT NOT NULL,
            is_direct INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE feedback (
            answer_id TEXT NOT NULL,
            "user" TEXT NOT NULL,
            rating INTEGER NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (answer_id, "user")
        )""",
        "CREATE INDEX feedback_at ON feedback (at)",
    ),
    # 8: the conversation each answer belongs to, so that erasing a conversation erases its answers and ratings
    (
        "ALTER TABLE answers ADD COLUMN conversation_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX answers_conversation ON answers (conversation_id)",
    ),
    # 9: a conversation not made yet: backend_id names the stored first answer it will be made from
    # (ConversationRecord.pending; a new thread's first turn does not wait for POST /v1/conversations)
    (
        "ALTER TABLE conversations ADD COLUMN pending INTEGER NOT NULL DEFAULT 0",
    ),
    # 10: how many spare conversations the last burst of new threads needed, per pool, for the next start
    (
        """CREATE TABLE spare_demand (
            pool TEXT PRIMARY KEY,
            demand INTEGER NOT NULL,
            at DOUBLE PRECISION NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

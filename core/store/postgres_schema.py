"""PostgreSQL schema: versioned migrations, applied in order by core.store.postgres.PostgresStore.open().

Append only; never edit a released migration. The `teambridge_schema` table holds the version; migrations run
under an advisory lock (MIGRATION_LOCK), each in its own transaction, so processes starting together migrate
once. Version 1 is the whole schema the SQLite store reached in its versions 1-4.
"""
from __future__ import annotations

MIGRATION_LOCK = 0x7462_6D69_6772  # "tbmigr": the advisory lock key every teambridge process migrates under

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the schema
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
            size BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (sha256, purpose)
        )""",
        "CREATE INDEX files_file_id ON files (file_id)",
        """CREATE TABLE usage (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            assistant TEXT NOT NULL,
            platform TEXT NOT NULL,
            workspace TEXT NOT NULL,
            channel TEXT NOT NULL,
            "user" TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            cached_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            tool_calls BIGINT NOT NULL DEFAULT 0,
            code_interpreter_sessions BIGINT NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX usage_ts ON usage (ts)",
        """CREATE TABLE inflight (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            platform TEXT NOT NULL,
            channel TEXT NOT NULL,
            message_id TEXT NOT NULL,
            thread TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            owner TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE instances (
            owner TEXT PRIMARY KEY,
            lease_until DOUBLE PRECISION NOT NULL
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
            seq BIGINT NOT NULL,
            data TEXT NOT NULL,
            tokens BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (conversation, seq)
        )""",
    ),
    # 2: the audit trail of tool calls (function and MCP tools)
    (
        """CREATE TABLE tool_calls (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
            duration_ms BIGINT NOT NULL
        )""",
        "CREATE INDEX tool_calls_at ON tool_calls (at)",
    ),
    # 3: spare conversations made ahead at the backend (SQLite's version 6)
    (
        """CREATE TABLE spare_conversations (
            pool TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (pool, conversation_id)
        )""",
    ),
    # 4: answers and the feedback people gave them (SQLite's version 7)
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
            is_direct BOOLEAN NOT NULL,
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
    # 5: each process's share of the app-wide rate budgets (core/store/postgres_shares.py); PostgreSQL only
    (
        """CREATE TABLE rate_shares (
            scope TEXT NOT NULL,
            owner TEXT NOT NULL,
            bucket TEXT NOT NULL,
            share INTEGER NOT NULL,
            used INTEGER NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, owner, bucket)
        )""",
    ),
    # 6: when each user's recent messages were admitted, for the per-minute rate across processes (PostgreSQL only)
    (
        """CREATE TABLE message_times (
            user_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX message_times_user_at ON message_times (user_id, at)",
    ),
    # 7: the conversation each answer belongs to, so that erasing a conversation erases its answers and ratings
    # (SQLite's version 8)
    (
        "ALTER TABLE answers ADD COLUMN conversation_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX answers_conversation ON answers (conversation_id)",
    ),
    # 8: a conversation not made yet: backend_id names the stored first answer it will be made from
    # (ConversationRecord.pending; SQLite's version 9)
    (
        "ALTER TABLE conversations ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE",
    ),
    # 9: how many spare conversations the last burst of new threads needed, per pool (SQLite's version 10)
    (
        """CREATE TABLE spare_demand (
            pool TEXT PRIMARY KEY,
            demand INTEGER NOT NULL,
            at DOUBLE PRECISION NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

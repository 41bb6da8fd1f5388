"""Schema migrations of the model registry area (see store.schema for the conventions).

Design notes (why the tables look like this):
- Registered models are keyed by ``name``, like MLflow: every child row carries the name, so the
  wire's (name, version) addressing is a primary-key lookup. A rename updates the children in
  the same transaction; renames are rare, lookups are not.
- ``registered_models.last_version`` is the version counter. Creating a version increments it
  with one UPDATE, which takes the row lock on PostgreSQL, so concurrent registrations queue on
  that row and get consecutive numbers with no gaps and no duplicates (SQLite serialises writes
  anyway). Versions are never hard-deleted (MLflow soft-deletes them as ``Deleted_Internal``), so
  the counter and ``MAX(version)`` agree.
- ``registry_history`` is append-only: every alias, stage and tag change (and model/version
  creation, rename and deletion) with who, when, old and new value, written in the transaction
  that made the change. It deliberately has no foreign key: it outlives what it describes.
- Logged models (MLflow 3) live here too: they are models, and the registry reads them when a
  version's source is ``models:/m-...``. Their metrics keep run and dataset, as MLflow returns them.
- Webhook events are stored as ``entity.action`` strings; secrets are stored sealed (see
  labtrack.webhooks) and are never returned by the API.
"""

from __future__ import annotations

REGISTRY: list[list[str]] = [
    # 1: registered models, versions, tags, aliases, history, logged models, webhooks
    [
        """CREATE TABLE registered_models (
            name {text} NOT NULL PRIMARY KEY,
            creation_timestamp {bigint} NOT NULL,
            last_updated_timestamp {bigint} NOT NULL,
            description {text},
            user_id {text} NOT NULL DEFAULT '',
            last_version {bigint} NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX registered_models_by_update ON registered_models (last_updated_timestamp)",
        """CREATE TABLE registered_model_tags (
            name {text} NOT NULL,
            key {text} NOT NULL,
            value {text} NOT NULL,
            PRIMARY KEY (name, key)
        ){without_rowid}""",
        """CREATE TABLE registered_model_aliases (
            name {text} NOT NULL,
            alias {text} NOT NULL,
            version {bigint} NOT NULL,
            PRIMARY KEY (name, alias)
        ){without_rowid}""",
        """CREATE TABLE model_versions (
            name {text} NOT NULL,
            version {bigint} NOT NULL,
            creation_timestamp {bigint} NOT NULL,
            last_updated_timestamp {bigint} NOT NULL,
            description {text},
            user_id {text} NOT NULL DEFAULT '',
            current_stage {text} NOT NULL DEFAULT 'None',
            source {text} NOT NULL,
            run_id {text},
            run_link {text},
            status {text} NOT NULL DEFAULT 'READY',
            status_message {text},
            storage_location {text},
            model_id {text},
            PRIMARY KEY (name, version)
        ){without_rowid}""",
        "CREATE INDEX model_versions_by_stage ON model_versions (name, current_stage, version)",
        "CREATE INDEX model_versions_by_run ON model_versions (run_id)",
        "CREATE INDEX model_versions_by_model_id ON model_versions (model_id)",
        "CREATE INDEX model_versions_by_update ON model_versions (last_updated_timestamp)",
        """CREATE TABLE model_version_tags (
            name {text} NOT NULL,
            version {bigint} NOT NULL,
            key {text} NOT NULL,
            value {text} NOT NULL,
            PRIMARY KEY (name, version, key)
        ){without_rowid}""",
        """CREATE TABLE registry_history (
            event_id {pk},
            timestamp {bigint} NOT NULL,
            user_id {text} NOT NULL DEFAULT '',
            name {text} NOT NULL,
            version {bigint},
            kind {text} NOT NULL,
            key {text} NOT NULL DEFAULT '',
            old_value {text},
            new_value {text}
        )""",
        "CREATE INDEX registry_history_by_model ON registry_history (name, timestamp, event_id)",
        "CREATE INDEX registry_history_by_key ON registry_history (name, kind, key, timestamp)",
        """CREATE TABLE logged_models (
            model_id {text} NOT NULL PRIMARY KEY,
            experiment_id {bigint} NOT NULL,
            name {text} NOT NULL,
            artifact_location {text} NOT NULL,
            creation_timestamp_ms {bigint} NOT NULL,
            last_updated_timestamp_ms {bigint} NOT NULL,
            status {text} NOT NULL DEFAULT 'LOGGED_MODEL_PENDING',
            status_message {text},
            lifecycle_stage {text} NOT NULL DEFAULT 'active',
            model_type {text},
            source_run_id {text},
            creator_id {text} NOT NULL DEFAULT ''
        )""",
        """CREATE INDEX logged_models_by_experiment
            ON logged_models (experiment_id, lifecycle_stage, creation_timestamp_ms)""",
        "CREATE INDEX logged_models_by_run ON logged_models (source_run_id)",
        """CREATE TABLE logged_model_params (
            model_id {text} NOT NULL,
            key {text} NOT NULL,
            value {text} NOT NULL,
            PRIMARY KEY (model_id, key)
        ){without_rowid}""",
        """CREATE TABLE logged_model_tags (
            model_id {text} NOT NULL,
            key {text} NOT NULL,
            value {text} NOT NULL,
            PRIMARY KEY (model_id, key)
        ){without_rowid}""",
        """CREATE TABLE logged_model_metrics (
            model_id {text} NOT NULL,
            key {text} NOT NULL,
            value {double} NOT NULL,
            is_nan SMALLINT NOT NULL DEFAULT 0,
            timestamp {bigint} NOT NULL,
            step {bigint} NOT NULL,
            run_id {text} NOT NULL DEFAULT '',
            dataset_name {text} NOT NULL DEFAULT '',
            dataset_digest {text} NOT NULL DEFAULT '',
            PRIMARY KEY (model_id, key, timestamp, step, run_id, dataset_name, dataset_digest)
        ){without_rowid}""",
        "CREATE INDEX logged_model_metrics_by_key ON logged_model_metrics (key, value)",
        """CREATE TABLE webhooks (
            webhook_id {text} NOT NULL PRIMARY KEY,
            name {text} NOT NULL,
            description {text},
            url {text} NOT NULL,
            status {text} NOT NULL DEFAULT 'ACTIVE',
            secret {text},
            creation_timestamp {bigint} NOT NULL,
            last_updated_timestamp {bigint} NOT NULL,
            deleted_timestamp {bigint}
        )""",
        """CREATE TABLE webhook_events (
            webhook_id {text} NOT NULL,
            event {text} NOT NULL,
            position {bigint} NOT NULL DEFAULT 0,
            PRIMARY KEY (webhook_id, event)
        ){without_rowid}""",
        "CREATE INDEX webhook_events_by_event ON webhook_events (event)",
    ],
]

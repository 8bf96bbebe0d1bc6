//! The PostgreSQL state store: one row per actor in `troupe_actor_state`, written under the
//! activation's epoch. The table is created on first use (the database user needs CREATE on its
//! schema once); the connection string comes from the Secret the pool names
//! (`TROUPE_STORE_DSN`) and is never logged. TLS as the string's `sslmode` says, with libpq's
//! meanings (`tls.rs`).
//!
//! Every call is bounded ([`CALL_TIMEOUT`]): a store that hangs is a store that is down, and the
//! caller decides whether to retry.

use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{
    Forgotten, JOURNAL_READ_MAX, JournalEntry, JournalWrite, SWEEP_READ_MAX, StateRef, StateStore,
    StoreError, client_cert, dsn, tls,
};
use crate::host::ActorKey;

/// Connections one worker keeps to the store at most.
const POOL_SIZE: usize = 8;
/// How long one call (connect, wait for a connection, statement) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Under an advisory lock: `CREATE TABLE IF NOT EXISTS` run by two sessions at once (workers
/// starting together) can fail one of them on a duplicate catalogue row.
const SCHEMA: &str = "BEGIN;
SELECT pg_advisory_xact_lock(7413327043);
CREATE TABLE IF NOT EXISTS troupe_actor_state (
    namespace  text        NOT NULL,
    name       text        NOT NULL,
    uid        text        NOT NULL,
    epoch      bigint      NOT NULL,
    state      jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS troupe_actor_journal (
    seq       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace text        NOT NULL,
    name      text        NOT NULL,
    uid       text        NOT NULL,
    epoch     bigint      NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    messages  integer     NOT NULL,
    state     jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS troupe_actor_journal_actor ON troupe_actor_journal (namespace, name, seq);
ALTER TABLE troupe_actor_state ADD COLUMN IF NOT EXISTS pool text;
ALTER TABLE troupe_actor_journal ADD COLUMN IF NOT EXISTS pool text;
COMMIT;";

/// Takes the row for an epoch (see [`StateStore::activate`]) in one statement. A row of another
/// uid is an Actor deleted since: replaced. The `WHERE` leaves a row of a newer epoch alone, and
/// then nothing is returned.
const ACTIVATE: &str = "INSERT INTO troupe_actor_state AS t (namespace, name, uid, epoch, state, pool)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (namespace, name) DO UPDATE SET
        uid = EXCLUDED.uid,
        pool = EXCLUDED.pool,
        epoch = EXCLUDED.epoch,
        state = CASE WHEN EXCLUDED.state IS NOT NULL THEN EXCLUDED.state
                     WHEN t.uid = EXCLUDED.uid THEN t.state END,
        updated_at = now()
    WHERE t.uid <> EXCLUDED.uid OR t.epoch <= EXCLUDED.epoch
    RETURNING state";

/// Writes under exactly the epoch that took the row: an older one finds no row to update.
const SAVE: &str = "UPDATE troupe_actor_state SET state = $5, updated_at = now()
    WHERE namespace = $1 AND name = $2 AND uid = $3 AND epoch = $4";

/// [`SAVE`] and, only when it updated the row, the journal's entry: one statement, so the entry
/// is fenced by the same epoch and committed with the state or not at all.
const SAVE_JOURNALED: &str = "WITH saved AS (
        UPDATE troupe_actor_state SET state = $5, updated_at = now()
        WHERE namespace = $1 AND name = $2 AND uid = $3 AND epoch = $4
        RETURNING namespace, name, uid, epoch, state, pool)
    INSERT INTO troupe_actor_journal (namespace, name, uid, epoch, messages, state, pool)
    SELECT namespace, name, uid, epoch, $6, state, pool FROM saved";

/// Removes the entries past the newest `$3`, and those older than `$4` seconds when given.
const PRUNE_JOURNAL: &str = "DELETE FROM troupe_actor_journal
    WHERE namespace = $1 AND name = $2 AND (
        seq < (SELECT min(seq) FROM (SELECT seq FROM troupe_actor_journal
                                     WHERE namespace = $1 AND name = $2
                                     ORDER BY seq DESC LIMIT $3) newest)
        OR ($4::double precision IS NOT NULL AND at < now() - make_interval(secs => $4)))";

const READ_JOURNAL: &str = "SELECT seq, uid, epoch, at, messages, state FROM troupe_actor_journal
    WHERE namespace = $1 AND name = $2 ORDER BY seq DESC LIMIT $3";

/// An Actor object's row and journal entries, in one statement: (rows, entries) removed.
const FORGET: &str = "WITH state_row AS (
        DELETE FROM troupe_actor_state WHERE namespace = $1 AND name = $2 AND uid = $3 RETURNING 1),
    entries AS (
        DELETE FROM troupe_actor_journal WHERE namespace = $1 AND name = $2 AND uid = $3 RETURNING 1)
    SELECT (SELECT count(*) FROM state_row), (SELECT count(*) FROM entries)";

/// The Actor objects of a pool that have a row or journal entries. Rows written before the
/// `pool` column existed have none and are never swept.
const STORED: &str = "SELECT name, uid FROM troupe_actor_state WHERE namespace = $1 AND pool = $2
    UNION SELECT name, uid FROM troupe_actor_journal WHERE namespace = $1 AND pool = $2
    LIMIT $3";

const EPOCH_OF: &str = "SELECT epoch FROM troupe_actor_state WHERE namespace = $1 AND name = $2";

/// A [`StateStore`] on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    schema: OnceCell<()>,
}

impl PgStore {
    /// A store for `dsn` (`postgres://user:password@host:port/db` or key=value form) with no
    /// CA of the Secret's: see [`PgStore::with_ca`].
    pub fn new(dsn: &str) -> Result<PgStore, String> {
        PgStore::with_ca(dsn, None)
    }

    /// A store for `dsn`, trusting `ca` (PEM: the store Secret's `ca.crt`, `TROUPE_STORE_CA`)
    /// when given. Connects lazily: a store that is down at the worker's start is retried like
    /// one that went down. TLS settings that cannot work (a CA that is no certificate,
    /// `verify-full` with no CA) are refused here, and the worker does not start. The error
    /// names what is wrong with the string, never the string itself.
    pub fn with_ca(dsn: &str, ca: Option<&str>) -> Result<PgStore, String> {
        PgStore::with_tls(dsn, ca, (None, None))
    }

    /// [`PgStore::with_ca`], presenting the client certificate `client` (PEM: certificate and
    /// key, the pool's client certificate Secret's `tls.crt` and `tls.key`) to a store that
    /// asks for one.
    pub fn with_tls(
        dsn: &str,
        ca: Option<&str>,
        client: (Option<&str>, Option<&str>),
    ) -> Result<PgStore, String> {
        let dsn = dsn::split(dsn).map_err(|e| format!("TROUPE_STORE_DSN: {e}"))?;
        let mut config = tokio_postgres::Config::from_str(&dsn.postgres)
            .map_err(|e| format!("TROUPE_STORE_DSN is not a PostgreSQL connection string: {e}"))?;
        let tls = client_cert::identity(dsn.client_cert.as_ref(), client)
            .and_then(|client| tls::plan(dsn.sslmode, dsn.sslrootcert.as_ref(), ca, client))
            .map_err(|e| format!("the state store's TLS settings: {e}"))?;
        tracing::info!(tls = %tls.summary, "state store");
        for warning in &tls.warnings {
            tracing::warn!("state store: {warning}");
        }
        config.ssl_mode(tls.ssl_mode);
        config.connect_timeout(CALL_TIMEOUT);
        config.application_name("troupe-worker");
        let manager = Manager::from_config(
            config,
            tls.connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .build()
            .map_err(|e| format!("the state store's connection pool: {e}"))?;
        Ok(PgStore {
            pool,
            schema: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let client = self.pool.get().await.map_err(|e| match e {
            // tokio-postgres's own words (a TLS refusal says why), without deadpool's preface.
            deadpool_postgres::PoolError::Backend(e) => pg_unavailable(e),
            e => unavailable(e),
        })?;
        let made = self
            .schema
            .get_or_try_init(|| async {
                bounded(client.batch_execute(SCHEMA)).await?;
                Ok::<(), StoreError>(())
            })
            .await;
        match made {
            Ok(()) => Ok(client),
            Err(e) => {
                // Perhaps inside the failed transaction: not back into the pool.
                drop(deadpool_postgres::Object::take(client));
                Err(e)
            }
        }
    }
}

/// The refusal of `mine`, with the epoch that holds the row, read on the connection that was
/// refused (a second one from the pool could wait behind callers holding all of them).
async fn stale(client: &deadpool_postgres::Object, actor: &StateRef, mine: u64) -> StoreError {
    let stored = bounded(client.query_opt(EPOCH_OF, &[&actor.key.namespace, &actor.key.name]))
        .await
        .ok()
        .flatten()
        .map(|row| row.get::<_, i64>(0) as u64);
    StoreError::Stale {
        mine,
        stored: stored.unwrap_or(0),
    }
}

/// A store error as the caller sees it: the store is unavailable. (Refusals by epoch are not
/// errors of PostgreSQL; they are rows not returned or not updated.)
fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A PostgreSQL error with the server's own words ("db error" alone says nothing), or with its
/// causes: tokio-postgres's own text is only the kind ("error performing TLS handshake"), and
/// the cause says why (a certificate refused, the server without TLS, a connection refused).
fn pg_unavailable(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Unavailable(format!("{} ({})", db.message(), db.code().code())),
        // The error and its causes, each after a colon.
        None => StoreError::Unavailable(format!("{:#}", anyhow::Error::new(e))),
    }
}

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r.map_err(pg_unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

fn epoch_param(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl StateStore for PgStore {
    async fn activate(
        &self,
        actor: &StateRef,
        epoch: u64,
        handed: Option<&Value>,
    ) -> Result<Option<Value>, StoreError> {
        let client = self.client().await?;
        let row = bounded(client.query_opt(
            ACTIVATE,
            &[
                &actor.key.namespace,
                &actor.key.name,
                &actor.uid,
                &epoch_param(epoch),
                &handed,
                &actor.pool,
            ],
        ))
        .await?;
        match row {
            Some(row) => Ok(row.get::<_, Option<Value>>(0)),
            None => Err(stale(&client, actor, epoch).await),
        }
    }

    async fn save(
        &self,
        actor: &StateRef,
        epoch: u64,
        state: &Value,
        journal: Option<&JournalWrite>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let messages = journal.map(|j| i32::try_from(j.messages).unwrap_or(i32::MAX));
        let key = &actor.key;
        let epoch_p = epoch_param(epoch);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&key.namespace, &key.name, &actor.uid, &epoch_p, state];
        if let Some(messages) = &messages {
            params.push(messages);
        }
        let statement = if journal.is_some() { SAVE_JOURNALED } else { SAVE };
        let updated = bounded(client.execute(statement, &params)).await?;
        if updated != 1 {
            return Err(stale(&client, actor, epoch).await);
        }
        if let Some(j) = journal {
            // The entry is in; keeping the journal short may wait for the next write if this fails.
            let keep = i64::from(j.keep.max(1));
            let age = j.keep_for.map(|a| a.as_secs_f64());
            if let Err(e) =
                bounded(client.execute(PRUNE_JOURNAL, &[&key.namespace, &key.name, &keep, &age])).await
            {
                tracing::warn!(actor = %key, error = %e, "pruning the journal failed; retried at the next write");
            }
        }
        Ok(())
    }

    async fn journal(&self, key: &ActorKey, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        let client = self.client().await?;
        let limit = i64::from(limit.min(JOURNAL_READ_MAX));
        let rows = bounded(client.query(READ_JOURNAL, &[&key.namespace, &key.name, &limit])).await?;
        Ok(rows
            .iter()
            .map(|r| JournalEntry {
                seq: r.get(0),
                uid: r.get(1),
                epoch: r.get::<_, i64>(2).max(0) as u64,
                at: r.get(3),
                messages: r.get::<_, i32>(4).max(0) as u32,
                state: r.get(5),
            })
            .collect())
    }

    async fn forget(&self, actor: &StateRef) -> Result<Forgotten, StoreError> {
        let client = self.client().await?;
        let key = &actor.key;
        let row = bounded(client.query_one(FORGET, &[&key.namespace, &key.name, &actor.uid])).await?;
        Ok(Forgotten {
            rows: row.get::<_, i64>(0).max(0) as u64,
            journal_entries: row.get::<_, i64>(1).max(0) as u64,
        })
    }

    async fn stored(&self, namespace: &str, pool: &str) -> Result<Vec<StateRef>, StoreError> {
        let client = self.client().await?;
        let limit = i64::from(SWEEP_READ_MAX);
        let rows = bounded(client.query(STORED, &[&namespace, &pool, &limit])).await?;
        Ok(rows
            .iter()
            .map(|r| StateRef {
                key: ActorKey::new(namespace, r.get::<_, String>(0)),
                uid: r.get(1),
                pool: pool.to_string(),
            })
            .collect())
    }
}

use ragbot::{
    config::{DatabaseConfig, TlsMode},
    store,
};
use ragbot_tests::TestDb;
use tokio_postgres::error::SqlState;

async fn denied(client: &tokio_postgres::Client, sql: &str) {
    let err = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("app role must not run: {sql}"));
    assert_eq!(
        err.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {err:?}"
    );
}

#[tokio::test]
async fn app_role_has_dml_but_no_ddl() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let app = TestDb::connect(&db.app_url).await;

    denied(&app, "CREATE TABLE sneaky (id int)").await;
    denied(&app, "DROP TABLE documents").await;
    denied(&app, "ALTER TABLE documents ADD COLUMN sneaky int").await;
    denied(&app, "CREATE INDEX sneaky_idx ON documents (title)").await;
    denied(&app, "TRUNCATE documents").await;
    denied(&app, "SELECT * FROM refinery_schema_history").await;

    // ...but it can read and write rows (of the tenant its session names: row-level security).
    app.batch_execute(
        "SELECT set_config('ragbot.tenant', 't1', false);
         INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
         VALUES ('t1', 'Doc', 'api', 'k1', 'abc', 'text/plain')",
    )
    .await
    .expect("app role inserts");
    let n: i64 = app
        .query_one("SELECT count(*) FROM documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    app.batch_execute("DELETE FROM documents")
        .await
        .expect("app role deletes");
}

#[tokio::test]
async fn migrator_owns_the_schema() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let m = TestDb::connect(&db.migrator_url).await;
    m.batch_execute(
        "CREATE TABLE scratch (id int);
         ALTER TABLE scratch ADD COLUMN note text;
         ALTER TABLE documents ADD COLUMN scratch_note text;
         ALTER TABLE documents DROP COLUMN scratch_note;
         DROP TABLE scratch;",
    )
    .await
    .expect("migrator runs DDL");
}

#[tokio::test]
async fn schema_has_vector_column_and_indexes_and_migrating_again_is_a_no_op() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let m = TestDb::connect(&db.migrator_url).await;
    let ty: String = m
        .query_one(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ty, "vector(384)");
    // Vectors and tsvectors stay in the heap row (V8): exact distances and keyword ranking need
    // no TOAST lookups.
    for column in ["embedding", "tsv"] {
        let storage: i8 = m
            .query_one(
                "SELECT attstorage FROM pg_attribute
                 WHERE attrelid = 'chunks'::regclass AND attname = $1",
                &[&column],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(storage as u8, b'm', "chunks.{column} has STORAGE MAIN");
    }
    let indexes: Vec<String> = m
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'chunks'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("USING hnsw (embedding vector_cosine_ops)")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|d| d.contains("USING gin (tsv)")),
        "{indexes:?}"
    );
    assert!(
        indexes.iter().any(|d| d.contains("(tenant, document_id)")),
        "{indexes:?}"
    );
    for table in [
        "documents",
        "chunks",
        "conversations",
        "messages",
        "ingest_jobs",
        "ingest_job_chunks",
    ] {
        let has_tenant: bool = m
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = 'tenant')",
                &[&table],
            )
            .await
            .unwrap()
            .get(0);
        assert!(has_tenant, "{table} has no tenant column");
    }

    let applied = store::migrate(&DatabaseConfig::for_url(&db.migrator_url, TlsMode::Disable))
        .await
        .unwrap();
    assert!(applied.is_empty(), "second migrate applied {applied:?}");
}

#[tokio::test]
async fn chunks_cannot_cross_tenants_and_cascade_with_their_document() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let app = TestDb::connect(&db.app_url).await;
    app.batch_execute("SELECT set_config('ragbot.tenant', 'a', false)")
        .await
        .unwrap();
    let doc: uuid::Uuid = app
        .query_one(
            "INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
             VALUES ('a', 'Doc', 'api', 'k', 'sha', 'text/plain') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let v = pgvector_literal();
    // As tenant b (so row-level security lets the row through), the foreign key still refuses it.
    app.batch_execute("SELECT set_config('ragbot.tenant', 'b', false)")
        .await
        .unwrap();
    let err = app
        .execute(
            &format!("INSERT INTO chunks (document_id, tenant, ordinal, text, embedding, embedding_model) VALUES ($1, 'b', 0, 'x', '{v}', 'm')"),
            &[&doc],
        )
        .await
        .expect_err("a chunk of tenant b cannot point at tenant a's document");
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION));
    app.batch_execute("SELECT set_config('ragbot.tenant', 'a', false)")
        .await
        .unwrap();
    app.execute(
        &format!("INSERT INTO chunks (document_id, tenant, ordinal, text, embedding, embedding_model) VALUES ($1, 'a', 0, 'hello world', '{v}', 'm')"),
        &[&doc],
    )
    .await
    .unwrap();
    app.execute("DELETE FROM documents WHERE id = $1", &[&doc])
        .await
        .unwrap();
    let n: i64 = app
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "chunks cascade with their document");
}

/// Hybrid search's keyword matches come from a SECURITY DEFINER function (so the full-text index
/// serves them under RLS); it must keep the policy's boundary: the transaction's tenant only, and
/// nothing when no tenant is set.
#[tokio::test]
async fn keyword_matches_see_only_the_transactions_tenant() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let app = TestDb::connect(&db.app_url).await;
    let v = pgvector_literal();
    for tenant in ["a", "b"] {
        app.batch_execute(&format!(
            "SELECT set_config('ragbot.tenant', '{tenant}', false);
             WITH d AS (INSERT INTO documents (tenant, title, source, source_key, content_sha256, mime)
                        VALUES ('{tenant}', 'Doc', 'api', 'k', 'sha', 'text/plain') RETURNING id)
             INSERT INTO chunks (document_id, tenant, ordinal, text, embedding, embedding_model)
             SELECT id, '{tenant}', 0, 'the zebra protocol of {tenant}', '{v}', 'm' FROM d"
        ))
        .await
        .unwrap();
    }
    let raw = |tenant: &'static str| {
        let app = &app;
        async move {
            app.batch_execute(&format!(
                "SELECT set_config('ragbot.tenant', '{tenant}', false)"
            ))
            .await
            .unwrap();
            app.query(
                "SELECT id FROM ragbot_keyword_matches(websearch_to_tsquery('english', 'zebra'), 100)",
                &[],
            )
            .await
            .unwrap()
            .len()
        }
    };
    assert_eq!(raw("a").await, 1, "tenant a matches its own chunk only");
    assert_eq!(raw("b").await, 1, "tenant b matches its own chunk only");
    assert_eq!(raw("c").await, 0, "a tenant without chunks matches nothing");
    app.batch_execute("RESET ragbot.tenant").await.unwrap();
    let n = app
        .query(
            "SELECT id FROM ragbot_keyword_matches(websearch_to_tsquery('english', 'zebra'), 100)",
            &[],
        )
        .await
        .unwrap()
        .len();
    assert_eq!(n, 0, "the function itself returns nothing without a tenant");
}

fn pgvector_literal() -> String {
    let v: Vec<String> = (0..384)
        .map(|i| format!("{}", (i % 7) as f32 / 7.0))
        .collect();
    format!("[{}]", v.join(","))
}

#[tokio::test]
async fn the_vector_size_changes_only_while_the_knowledge_base_is_empty() {
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let cfg = DatabaseConfig::for_url(&db.migrator_url, TlsMode::Disable);
    let m = TestDb::connect(&db.migrator_url).await;
    let column = |table: &'static str| {
        let m = &m;
        async move {
            m.query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attname = 'embedding'",
                &[&table],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    let hnsw = || async {
        m.query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'chunks' AND indexdef ILIKE '%hnsw%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
    };
    let before = hnsw().await;
    assert_eq!(before.len(), 1);

    assert!(store::set_dimension(&cfg, 1024).await.unwrap());
    assert_eq!(column("chunks").await, "vector(1024)");
    assert_eq!(column("chunk_staging").await, "vector(1024)");
    assert_eq!(hnsw().await, before, "the same index, rebuilt");
    assert!(!store::set_dimension(&cfg, 1024).await.unwrap(), "no-op");
    let err = store::set_dimension(&cfg, 4096)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 to 2000"), "{err}");

    // With a chunk stored, the size stays.
    m.batch_execute(&format!(
        "INSERT INTO documents (id, tenant, title, source, source_key, content_sha256, mime)
             VALUES ('00000000-0000-0000-0000-000000000001', 't', 'd', 'api', 'k', 's', 'text/plain');
         INSERT INTO chunks (document_id, tenant, ordinal, text, embedding, embedding_model)
             VALUES ('00000000-0000-0000-0000-000000000001', 't', 0, 'x', '[{}]', 'm');",
        vec!["0.1"; 1024].join(",")
    ))
    .await
    .unwrap();
    // The type change kept STORAGE MAIN: the 4 kB vector is in the row, not in the TOAST table
    // (EXTERNAL, pgvector's default, moves it out of any row over 2 kB).
    let toast: i64 = m
        .query_one(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'chunks'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(toast, 0, "the vector was stored out of line");
    let err = store::set_dimension(&cfg, 384)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 1 vectors of 1024 dimensions"), "{err}");
    assert_eq!(column("chunks").await, "vector(1024)");
}

#[tokio::test]
async fn real_server_errors_are_classified_transient_or_not() {
    use ragbot::store::StoreError;
    let db = TestDb::create(&ragbot_tests::stack_env("RAGBOT_PG_ADMIN_URL")).await;
    let a = TestDb::connect(&db.migrator_url).await;
    let b = TestDb::connect(&db.migrator_url).await;
    a.batch_execute(
        "CREATE TABLE race (id int PRIMARY KEY, v int); INSERT INTO race VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();

    // A deadlock: each transaction holds the row the other wants.
    a.batch_execute("BEGIN; UPDATE race SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE race SET v = 1 WHERE id = 2")
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(
        a.batch_execute("UPDATE race SET v = 2 WHERE id = 2"),
        b.batch_execute("UPDATE race SET v = 2 WHERE id = 1"),
    );
    let deadlock = ra
        .err()
        .or(rb.err())
        .expect("one of them is the deadlock victim");
    let deadlock = StoreError::Query(deadlock);
    assert!(
        deadlock.is_transient() && deadlock.is_conflict(),
        "{deadlock}"
    );
    a.batch_execute("ROLLBACK").await.unwrap();
    b.batch_execute("ROLLBACK").await.unwrap();

    // A serialization failure between two SERIALIZABLE transactions.
    a.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT sum(v) FROM race")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT sum(v) FROM race")
        .await
        .unwrap();
    a.batch_execute("UPDATE race SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("UPDATE race SET v = v + 1 WHERE id = 2")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let serialization = StoreError::Query(b.batch_execute("COMMIT").await.unwrap_err());
    assert!(serialization.is_conflict(), "{serialization}");
    assert!(serialization.is_transient());

    // Not transient: a constraint violation, and a value that does not convert (no SQL state).
    let duplicate = StoreError::Query(
        a.batch_execute("INSERT INTO race VALUES (1, 0)")
            .await
            .unwrap_err(),
    );
    assert!(
        !duplicate.is_transient() && !duplicate.is_conflict(),
        "{duplicate}"
    );
    let row = a.query_one("SELECT 'text'::text", &[]).await.unwrap();
    let conversion = StoreError::Query(row.try_get::<_, i32>(0).unwrap_err());
    assert!(!conversion.is_transient(), "{conversion}");

    // Transient: the server ends the connection.
    b.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
        .await
        .ok();
    let closed = StoreError::Query(b.batch_execute("SELECT 1").await.unwrap_err());
    assert!(closed.is_transient(), "{closed}");
}

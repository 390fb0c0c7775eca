//! The SQL front door through psql: a local cluster's coordinator answers PostgreSQL's wire
//! protocol on its SQL port. psql reads the configuration view, creates a distributed table,
//! writes and reads it (by key, by scan, counted), runs a transaction and a rollback, gets
//! PostgreSQL's SQLSTATEs for a syntax error and a duplicate key with the session usable
//! after both; wrong passwords, unknown users and connections no rule admits are refused with
//! PostgreSQL's messages; md5, trust and reject rules do what PostgreSQL's do; a user added by
//! `sql-user` connects; a malformed or oversized message closes only its own connection; with a
//! certificate in the cluster file, clients connect over TLS and `hostssl` rules demand it.
//!
//! Needs psql (`postgresql-client`): skipped loudly without it, failed in CI (`CI` set).
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_sql`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{until, LocalCluster};

fn psql_available() -> bool {
    Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// psql against the cluster's SQL port as `user` with `password`; `script` on its standard
/// input when given.
fn psql(port: u16, user: &str, password: &str, args: &[&str], script: Option<&str>) -> Output {
    let mut child = Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", user, "-d", "postgres", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(script) = script {
        stdin.write_all(script.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const SESSION: &str = "\
CREATE TABLE t (id bigint PRIMARY KEY, v text) DISTRIBUTED BY (id);
INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
SELECT v FROM t WHERE id = 2;
SELECT id, v FROM t ORDER BY id;
SELECT count(*) FROM t;
BEGIN;
INSERT INTO t VALUES (4, 'four');
INSERT INTO t VALUES (5, 'five');
COMMIT;
BEGIN;
INSERT INTO t VALUES (6, 'six');
ROLLBACK;
SELEC 1;
INSERT INTO t VALUES (1, 'again');
BEGIN;
INSERT INTO t VALUES (2, 'again');
SELECT 1;
ROLLBACK;
SELECT 42 AS still_here;
SELECT count(*) AS rows_after FROM t;
DROP TABLE t;
SELECT * FROM t;
CREATE TABLE t (id bigint PRIMARY KEY, n int);
SELECT count(*) AS made_again FROM t;
INSERT INTO t VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5);
";

#[test]
fn psql_creates_writes_reads_and_is_refused_as_postgresql_refuses() {
    if !psql_available() {
        assert!(
            !in_ci(),
            "psql is missing in CI; .ci/run installs postgresql-client"
        );
        eprintln!("SKIPPED real_io_sql: psql is not installed (apt-get install postgresql-client)");
        return;
    }
    let c = LocalCluster::init("sql", &[]);
    c.verb("start", &[]);
    let file = c.file_json();
    let port = file["coordinator"]["sql_port"]
        .as_u64()
        .expect("init-local gives the coordinator a SQL port") as u16;
    assert_eq!(
        port,
        c.base_port + 100,
        "the SQL port defaults to base + 100"
    );
    let password = std::fs::read_to_string(c.dir.join("sql.password")).unwrap();
    let password = password.trim().to_string();

    // The configuration view, once the coordinator listens.
    let config = until(
        "psql reads gp_segment_configuration",
        Duration::from_secs(30),
        || {
            let out = psql(
                port,
                "gpadmin",
                &password,
                &["-c", "SELECT * FROM gp_segment_configuration"],
                None,
            );
            out.status.success().then(|| text(&out))
        },
    );
    for want in ["dbid", "preferred_role", "primary0", "mirror0", "(2 rows)"] {
        assert!(config.contains(want), "{want} missing from:\n{config}");
    }

    // A session: every statement's answer in order, errors with their SQLSTATE.
    let out = psql(port, "gpadmin", &password, &["-f", "-"], Some(SESSION));
    let got = text(&out);
    assert!(out.status.success(), "{got}");
    let expected_in_order = [
        "CREATE TABLE",
        "INSERT 0 3",
        " two\n",
        "(1 row)",
        "  1 | one\n  2 | two\n  3 | three\n(3 rows)",
        "     3\n(1 row)",
        "BEGIN\nINSERT 0 1\nINSERT 0 1\nCOMMIT",
        "BEGIN\nINSERT 0 1\nROLLBACK",
        "ERROR:  42601:",
        "ERROR:  23505:",
        "BEGIN",
        "ERROR:  23505:",
        "ERROR:  25P02:",
        "ROLLBACK",
        "still_here \n------------\n         42\n(1 row)",
        "rows_after \n------------\n          5\n(1 row)",
        "DROP TABLE",
        "ERROR:  42P01:",
        "CREATE TABLE",
        "made_again \n------------\n          0\n(1 row)",
    ];
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // psql prints results on standard output and errors on standard error: each in order.
    let mut at = 0;
    let mut err_at = 0;
    for want in expected_in_order {
        let (stream, pos) = if want.starts_with("ERROR") {
            (&stderr, &mut err_at)
        } else {
            (&stdout, &mut at)
        };
        match stream[*pos..].find(want) {
            Some(i) => *pos += i + want.len(),
            None => panic!("{want:?} not found in order in:\n{stdout}\n---\n{stderr}"),
        }
    }
    assert!(stderr.contains("duplicate key"), "{stderr}");
    // Statements sent in one query string (`-c`) are one transaction: the duplicate key in the
    // second takes the first back.
    let together = psql(
        port,
        "gpadmin",
        &password,
        &[
            "-c",
            "INSERT INTO t VALUES (6, 6); INSERT INTO t VALUES (1, 1)",
        ],
        None,
    );
    assert!(text(&together).contains("23505"), "{}", text(&together));
    let count = psql(
        port,
        "gpadmin",
        &password,
        &["-t", "-c", "SELECT count(*) FROM t"],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        "5",
        "{}",
        text(&count)
    );

    // Refusals, with PostgreSQL's messages.
    let wrong = psql(
        port,
        "gpadmin",
        "not-the-password",
        &["-c", "SELECT 1"],
        None,
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("password authentication failed for user \"gpadmin\""),
        "{}",
        text(&wrong)
    );
    let nobody = psql(port, "nobody", &password, &["-c", "SELECT 1"], None);
    assert!(
        text(&nobody).contains("password authentication failed for user \"nobody\""),
        "{}",
        text(&nobody)
    );
    // The rules are read at each connection: a file without a rule for 127.0.0.1 refuses.
    let hba = c.dir.join("hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, "host all all ::1/128 scram-sha-256\n").unwrap();
    let unlisted = psql(port, "gpadmin", &password, &["-c", "SELECT 1"], None);
    assert!(
        text(&unlisted).contains(
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"gpadmin\", database \"postgres\""
        ),
        "{}",
        text(&unlisted)
    );
    // md5, trust and reject, each for one user, ahead of the default rules.
    std::fs::write(
        &hba,
        format!(
            "host all bob 127.0.0.1/32 md5\n\
             host all trusty 127.0.0.1/32 trust\n\
             host all mallory 127.0.0.1/32 reject\n{rules}"
        ),
    )
    .unwrap();
    let users = c.dir.join("users");
    let mut listed = std::fs::read_to_string(&users).unwrap();
    let bob = cluster::frontdoor::auth::Verifier::md5("bob", "builder");
    listed.push_str(&format!("bob {}\n", bob.encode()));
    std::fs::write(&users, listed).unwrap();
    let md5 = psql(port, "bob", "builder", &["-t", "-c", "SELECT 5"], None);
    assert!(md5.status.success(), "{}", text(&md5));
    let md5_wrong = psql(port, "bob", "fixer", &["-t", "-c", "SELECT 5"], None);
    assert!(
        text(&md5_wrong).contains("password authentication failed for user \"bob\""),
        "{}",
        text(&md5_wrong)
    );
    let trusted = psql(port, "trusty", "", &["-t", "-c", "SELECT 5"], None);
    assert!(trusted.status.success(), "{}", text(&trusted));
    let rejected = psql(port, "mallory", &password, &["-t", "-c", "SELECT 5"], None);
    assert!(
        text(&rejected).contains(
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"mallory\", database \"postgres\""
        ),
        "{}",
        text(&rejected)
    );
    std::fs::write(&hba, &rules).unwrap();

    // sql-user adds a user; the running coordinator takes it at the next connection.
    let pw_file = c.dir.join("alice.pw");
    std::fs::write(&pw_file, "wonderland\n").unwrap();
    c.verb(
        "sql-user",
        &[
            "--user",
            "alice",
            "--password-file",
            pw_file.to_str().unwrap(),
        ],
    );
    let alice = psql(
        port,
        "alice",
        "wonderland",
        &["-t", "-c", "SELECT count(*) FROM t"],
        None,
    );
    assert!(alice.status.success(), "{}", text(&alice));
    assert_eq!(String::from_utf8_lossy(&alice.stdout).trim(), "5");

    // A message declaring 2 GiB, and garbage: each closes its own connection at once.
    for junk in [
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef],
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&junk).unwrap();
        let mut buf = [0u8; 4096];
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the connection stayed open after {junk:?}: {e}"),
            }
            assert!(total < 1 << 16, "an answer that does not end");
        }
    }
    let after = psql(
        port,
        "gpadmin",
        &password,
        &["-t", "-c", "SELECT count(*) FROM t"],
        None,
    );
    assert!(after.status.success(), "{}", text(&after));
    assert_eq!(String::from_utf8_lossy(&after.stdout).trim(), "5");

    // `state --cluster` names the SQL port.
    let state = c.ok(&[
        "state",
        "--coordinator",
        &c.coordinator,
        "--cluster",
        c.file_arg(),
    ]);
    assert!(
        state.contains(&format!("SQL clients: 127.0.0.1:{port}")),
        "{state}"
    );
}

#[test]
fn bad_users_and_rules_lines_stop_the_coordinators_start_naming_file_line_and_rule() {
    let c = LocalCluster::init("sqlbad", &[]);
    let users = c.dir.join("users");
    let good = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, format!("{good}mallory hunter2\n")).unwrap();
    let err = c.refused(&["coordinator", "--cluster", c.file_arg()]);
    assert!(
        err.contains(&format!("users file {} line 3", users.display()))
            && err.contains("plaintext passwords are not kept"),
        "{err}"
    );
    std::fs::write(&users, good).unwrap();
    let hba = c.dir.join("hba.conf");
    std::fs::write(&hba, "host all all 127.0.0.1 scram-sha-256\n").unwrap();
    let err = c.refused(&["coordinator", "--cluster", c.file_arg()]);
    assert!(
        err.contains(&format!("rules file {} line 1", hba.display()))
            && err.contains("ADDRESS/PREFIX"),
        "{err}"
    );
}

#[test]
fn with_a_certificate_clients_may_connect_over_tls_and_hostssl_rules_demand_it() {
    if !psql_available() {
        assert!(
            !in_ci(),
            "psql is missing in CI; .ci/run installs postgresql-client"
        );
        eprintln!("SKIPPED real_io_sql TLS: psql is not installed");
        return;
    }
    let c = LocalCluster::init("sqltls", &[]);
    let (cert, key) = (c.dir.join("sql-cert.pem"), c.dir.join("sql-key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(!in_ci(), "openssl is needed to make the test's certificate");
        eprintln!("SKIPPED real_io_sql TLS: openssl cannot make a certificate: {made:?}");
        return;
    }
    c.edit_file(|f| {
        f["sql_tls_cert"] = serde_json::json!(cert);
        f["sql_tls_key"] = serde_json::json!(key);
    });
    std::fs::write(
        c.dir.join("hba.conf"),
        "hostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    c.verb("start", &[]);
    let port = c.file_json()["coordinator"]["sql_port"].as_u64().unwrap() as u16;
    let password = std::fs::read_to_string(c.dir.join("sql.password")).unwrap();
    let password = password.trim().to_string();
    let over_tls = until("psql over TLS", Duration::from_secs(30), || {
        let out = Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={port} user=gpadmin dbname=postgres sslmode=require"
            ))
            .args(["-X", "-t", "-c", "SELECT 7 AS seven"])
            .env("PGPASSWORD", &password)
            .output()
            .unwrap();
        out.status.success().then(|| text(&out))
    });
    assert_eq!(over_tls.trim(), "7");
    let plain = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=gpadmin dbname=postgres sslmode=disable"
        ))
        .args(["-X", "-c", "SELECT 1"])
        .env("PGPASSWORD", &password)
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("no pg_hba.conf entry for host \"127.0.0.1\""),
        "{}",
        text(&plain)
    );
}

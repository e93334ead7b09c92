//! The CLI and a stdout that goes away (issue 18): like other Unix tools, a
//! command whose reader closes the pipe early (`clientele tokens list | head
//! -1`) stops quietly, with no panic and no backtrace, and exits 0 (or 141,
//! killed by SIGPIPE); any other write error (`>/dev/full`) is one `error:`
//! line on stderr and exit 1. `serve` keeps serving when nobody reads its
//! stdout. All with the real binary.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clientele::admin;
use clientele::domain::Scope;

use crate::support::free_port;
use crate::support::process::{Sandbox, blocking};

/// Enough tokens that `tokens list` prints far more than a pipe buffers (64 KiB).
const TOKENS: usize = 3_000;

/// A SQLite database with a few accounts and [`TOKENS`] tokens.
fn database_with_many_tokens() -> Sandbox {
    let sandbox = Sandbox::sqlite();
    let url = &sandbox.url;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = clientele::storage::open(url).await.unwrap();
        for name in ["acme", "globex", "initech"] {
            admin::create_account(&store, name).await.unwrap();
        }
        let mut issued = tokio::task::JoinSet::new();
        for _ in 0..TOKENS {
            let store = store.clone();
            issued.spawn(async move { admin::issue_token(&store, "acme", Scope::Read, None).await.map(drop) });
        }
        while let Some(result) = issued.join_next().await {
            result.unwrap().unwrap();
        }
    });
    sandbox
}

/// `clientele --database-url <the sandbox's> ARGS...` with `stdout`, stderr piped,
/// and `RUST_BACKTRACE=1` (from [`Sandbox::command`]), so that a panic would show.
fn spawn(sandbox: &Sandbox, args: &[&str], stdout: Stdio) -> Child {
    sandbox
        .command()
        .arg("--database-url")
        .arg(&sandbox.url)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clientele")
}

fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap(), stderr)
}

#[track_caller]
fn assert_quiet_end(what: &str, status: ExitStatus, stderr: &str) {
    let quiet_status = status.code() == Some(0) || status.code() == Some(141) || status.signal() == Some(13);
    assert!(quiet_status, "{what}: exit status {status:?}; stderr: {stderr}");
    assert!(stderr.is_empty(), "{what}: nothing on stderr (no panic, no backtrace), got: {stderr}");
}

#[test]
fn listings_stop_quietly_when_the_reader_goes_away() {
    let sandbox = database_with_many_tokens();
    blocking(|| {
        // `tokens list | head -1`: one line read, then the pipe closes.
        let mut child = spawn(&sandbox, &["tokens", "list"], Stdio::piped());
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(first.starts_with("ID "), "the header comes first: {first}");
        let (status, stderr) = finish(child);
        assert_quiet_end("tokens list | head -1", status, &stderr);

        // `tokens list --json | head -c 100`.
        let mut child = spawn(&sandbox, &["tokens", "list", "--json"], Stdio::piped());
        let mut start = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut start).unwrap();
        assert!(start.starts_with(b"["), "a JSON array");
        let (status, stderr) = finish(child);
        assert_quiet_end("tokens list --json | head -c 100", status, &stderr);

        // `accounts list | head -0` and the like: the reader is gone before the first write.
        for args in
            [&["accounts", "list"][..], &["accounts", "list", "--json"], &["tokens", "list", "--account", "acme"]]
        {
            let mut child = spawn(&sandbox, args, Stdio::piped());
            drop(child.stdout.take());
            let (status, stderr) = finish(child);
            assert_quiet_end(&format!("{args:?} with the reader closed at once"), status, &stderr);
        }
    });
}

#[test]
fn another_write_error_is_one_error_line_and_exit_1() {
    let sandbox = database_with_many_tokens();
    for args in [
        &["tokens", "list"][..],
        &["tokens", "list", "--json"],
        &["accounts", "list"],
        &["accounts", "create", "x"],
        &["--version"],
        &["--help"],
    ] {
        let full = File::options().write(true).open("/dev/full").expect("/dev/full");
        let (status, stderr) = blocking(|| finish(spawn(&sandbox, args, Stdio::from(full))));
        assert_eq!(status.code(), Some(1), "{args:?} > /dev/full: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?} > /dev/full: one line: {stderr}");
        assert!(stderr.starts_with("error: cannot write to stdout: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_keeps_serving_when_nobody_reads_its_stdout() {
    let sandbox = Sandbox::sqlite();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Its bootstrap token and listening line go nowhere.
    let mut child = spawn(&sandbox, &["serve", "--listen", &listen], Stdio::piped());
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let answered = std::net::TcpStream::connect(&listen).is_ok_and(|mut stream| {
            use std::io::Write;
            let request = format!("GET /healthz HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 200")
        });
        if answered || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break answered;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let (_, stderr) = finish(child);
    assert!(healthy && running, "serve answers /healthz with its stdout closed; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `tokens create` whose secret cannot be written (`> /dev/full`, or a reader
/// gone before it) leaves no working token behind: nobody has its secret, so
/// the command revokes it, says so on stderr and exits 1, even for a closed
/// pipe. `--json` alike. On both backends.
#[test]
fn a_token_whose_secret_cannot_be_written_is_revoked_at_once() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["accounts", "create", "acme"]);
    let create = ["tokens", "create", "--account", "acme", "--name", "lost"];
    let runs: [(&str, Vec<&str>); 3] = [
        ("> /dev/full", create.to_vec()),
        ("--json > /dev/full", [&create[..], &["--json"]].concat()),
        ("with the reader closed at once", create.to_vec()),
    ];
    for (what, args) in runs {
        let (status, stderr) = blocking(|| {
            if what.contains("/dev/full") {
                let full = File::options().write(true).open("/dev/full").expect("/dev/full");
                finish(spawn(&sandbox, &args, Stdio::from(full)))
            } else {
                let mut child = spawn(&sandbox, &args, Stdio::piped());
                drop(child.stdout.take());
                finish(child)
            }
        });
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        let error = stderr.lines().last().unwrap_or_default();
        assert!(error.starts_with("error: token tok_"), "{what}: {stderr}");
        assert!(error.contains("was revoked, since its secret was never shown"), "{what}: {stderr}");
        assert!(error.contains("cannot write to stdout"), "{what}: {stderr}");
        assert!(!stderr.contains("clt_"), "{what}: never a secret on stderr: {stderr}");
    }
    let tokens = sandbox.json(&["tokens", "list", "--json"]);
    let tokens = tokens.as_array().expect("an array");
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    for token in tokens {
        assert!(token["revoked_at"].is_string(), "every token whose secret was lost is revoked: {token}");
    }
    let audit = sandbox.ok(&["audit"]);
    assert_eq!(audit.matches("token.revoked").count(), 3, "each revocation is in the audit trail: {audit}");
}

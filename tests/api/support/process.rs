//! Real `clientele` processes for the process-level tests (`cli`, `cluster`,
//! `logging`, `pg_outage`): the built binary, started with a clean environment,
//! talked to over HTTP and killed when dropped, pass or fail.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::database::TestDatabase;

/// The `clientele` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_clientele");
/// The line `serve` prints on stdout once it accepts connections, before the address.
pub const LISTENING: &str = "Clientele listening on http://";
/// How long a server may take to print its listening line (a loaded CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary with no `CLIENTELE_*` variable inherited from the caller's environment,
/// and `RUST_BACKTRACE=1`, so that a panic would show (the CLI's error tests assert none does).
pub fn command() -> Command {
    let mut command = clean_command(BIN);
    command.env("RUST_BACKTRACE", "1");
    command
}

/// `program` (the binary, or a shell that runs it) with no `CLIENTELE_*`
/// variable inherited from the caller's environment, and no stdin.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CLIENTELE_") {
            command.env_remove(&name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// `clientele --database-url URL serve --listen 127.0.0.1:0 ARGS...`, for [`Server::start`].
pub fn serve_command(database_url: &str, args: &[&str]) -> Command {
    let mut command = command();
    command.arg("--database-url").arg(database_url).args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    command
}

/// Runs `clientele --database-url URL ARGS...`, asserts exit 0 and returns stdout, trimmed.
pub fn cli(database_url: &str, args: &[&str]) -> String {
    let output = blocking(|| command().arg("--database-url").arg(database_url).args(args).output())
        .expect("run the clientele CLI");
    assert!(output.status.success(), "clientele {args:?} failed: {}", describe(&output));
    stdout(&output).trim().to_owned()
}

/// A finished command's stdout; panics if it is not UTF-8.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// A finished command's stderr; panics if it is not UTF-8.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// A finished command's status, stdout and stderr, for an assertion message.
pub fn describe(output: &Output) -> String {
    format!(
        "{}; stdout: {:?}; stderr: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs blocking work (a child process, a pipe) without stalling the test's
/// other async tasks on a multi-threaded runtime; on a current-thread runtime
/// (a plain `#[tokio::test]`), or outside any, it just runs it.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// A temporary directory, the working directory of every command run in it,
/// and a database of its own (on SQLite, the file `clientele.db` in the directory).
pub struct Sandbox {
    pub dir: TempDir,
    pub database: TestDatabase,
    /// The database's URL, for `--database-url`.
    pub url: String,
}

impl Sandbox {
    /// A database of the selected backend (SQLite, or PostgreSQL on the PostgreSQL pass).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::create_blocking(dir.path(), "clientele.db");
        Self::with(dir, database)
    }

    /// A SQLite file, whatever backend is selected.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::sqlite(dir.path(), "clientele.db");
        Self::with(dir, database)
    }

    /// The database is created first (on SQLite), as `serve` would: the admin commands never create one.
    fn with(dir: TempDir, database: TestDatabase) -> Self {
        database.ensure_created();
        let url = database.url.clone();
        Self { dir, database, url }
    }

    /// Another database of the same backend (on SQLite, `file` in the same directory, created).
    pub fn other_database(&self, file: &str) -> TestDatabase {
        let database = TestDatabase::create_blocking(self.dir.path(), file);
        database.ensure_created();
        database
    }

    /// A SQLite URL in this directory whose file does not exist (yet).
    pub fn missing_sqlite_url(&self, file: &str) -> String {
        TestDatabase::sqlite(self.dir.path(), file).url
    }

    /// [`command`], working in this directory.
    pub fn command(&self) -> Command {
        let mut command = command();
        command.current_dir(self.dir.path());
        command
    }

    /// Runs `clientele --database-url URL ARGS...` and parses its JSON output.
    pub fn json_at(&self, url: &str, args: &[&str]) -> serde_json::Value {
        let output = self.command().arg("--database-url").arg(url).args(args).output().expect("run");
        assert!(output.status.success(), "clientele {args:?} failed: {}", describe(&output));
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }

    /// Runs `clientele --database-url <this db> ARGS...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command().arg("--database-url").arg(&self.url).args(args).output().expect("run clientele")
    }

    /// Runs the command and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(output.status.success(), "clientele {args:?} failed: {}", describe(&output));
        stdout(&output)
    }

    /// [`Sandbox::ok`], parsed as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|error| panic!("clientele {args:?}: not JSON ({error}): {out}"))
    }

    /// [`serve_command`] on this database, working in this directory.
    pub fn serve_command(&self, args: &[&str]) -> Command {
        let mut command = serve_command(&self.url, args);
        command.current_dir(self.dir.path());
        command
    }

    /// Starts `serve` on this database and waits until it listens.
    pub fn serve(&self, args: &[&str]) -> Server {
        Server::start(self.serve_command(args))
    }
}

/// A `clientele serve` process; killed (SIGKILL) when dropped unless it already exited.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    /// What it printed on stdout before the listening line (the bootstrap block, if any).
    pub banner: Vec<String>,
    /// Everything it wrote on stderr (the logs) so far.
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Reads stderr until the process closes it.
    stderr_reader: Option<JoinHandle<()>>,
    /// Its stdout, line by line (behind a mutex, so that a server can be shared between tasks).
    lines: Mutex<Receiver<String>>,
}

impl Server {
    /// Starts `command` (a [`serve_command`]) and waits until it listens.
    pub fn start(command: Command) -> Self {
        let mut server = Self::spawn(command);
        server.wait_listening();
        server
    }

    /// Starts the process without waiting: several can then start at the same moment.
    pub fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn clientele serve");
        // stdout line by line into the receiver, stderr into the buffer, each on a
        // thread of its own, so the child never blocks on a full pipe.
        let (lines_tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        let stderr_reader = thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = err.read(&mut buffer) {
                sink.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(&buffer[..read]);
            }
        });
        Self {
            child,
            address: ([0, 0, 0, 0], 0).into(),
            banner: Vec::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
            lines: Mutex::new(lines),
        }
    }

    /// Waits for the listening line, collecting the banner before it.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        blocking(|| {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let next = self.lines.lock().unwrap_or_else(PoisonError::into_inner).recv_timeout(left);
                match next {
                    Ok(line) => match line.strip_prefix(LISTENING) {
                        Some(address) => {
                            self.address = address.trim().parse().expect("listening address");
                            return;
                        }
                        None => self.banner.push(line),
                    },
                    Err(RecvTimeoutError::Timeout) => {
                        panic!("no listening line within {START_TIMEOUT:?}; logs: {}", self.logs())
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        thread::sleep(Duration::from_millis(100));
                        let status = self.child.try_wait();
                        panic!("serve exited before listening ({status:?}); logs: {}", self.logs())
                    }
                }
            }
        });
    }

    /// `http://<its address><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged on stderr so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The token a first start printed in its bootstrap block, if it printed one.
    pub fn bootstrap_token(&self) -> Option<String> {
        let mut tokens = self.banner.iter().flat_map(|line| line.split_whitespace()).filter(|w| w.starts_with("clt_"));
        tokens.next().map(str::to_owned)
    }

    /// Sends it SIGTERM (a graceful stop), asserting that `kill` succeeded.
    pub fn sigterm(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "serve still running after {within:?}; stderr: {}", self.logs());
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then exit 0; returns everything it wrote on stderr, to the end.
    pub fn stop(mut self) -> String {
        self.sigterm();
        let status = self.wait_exit(STOP_TIMEOUT);
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().expect("stderr reader thread");
        }
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap_or_else(PoisonError::into_inner));
        let stderr = String::from_utf8(stderr).expect("stderr is UTF-8");
        assert_eq!(status.code(), Some(0), "serve exit status; stderr: {stderr}");
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Real `clientele` processes for the multi-process tests (`pg_outage`, `cluster`):
//! the built binary, started with a clean environment, talked to over HTTP and
//! killed when dropped, pass or fail. Shared by those test binaries only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clientele");
pub const DATABASE_URL_VAR: &str = "CLIENTELE_TEST_DATABASE_URL";
pub const REDIS_URL_VAR: &str = "CLIENTELE_TEST_REDIS_URL";
const LISTENING: &str = "Clientele listening on http://";
/// How long a server may take to print its listening line (a loaded CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The variable's value, or `None` after saying on stdout and stderr that `test` is skipped.
pub fn env_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            println!("SKIPPED {test}: {var} is not set (it needs a real server; see the test's header)");
            None
        }
    }
}

/// The binary with no `CLIENTELE_*` variable inherited from the caller's environment.
pub fn command() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CLIENTELE_") {
            command.env_remove(&name);
        }
    }
    command.env("CLIENTELE_LOG", "info").stdin(Stdio::null());
    command
}

/// Runs `clientele --database-url URL ARGS...`, asserts exit 0 and returns stdout, trimmed.
pub fn cli(database_url: &str, args: &[&str]) -> String {
    let output = blocking(|| command().arg("--database-url").arg(database_url).args(args).output())
        .expect("run the clientele CLI");
    assert!(output.status.success(), "clientele {args:?} failed: {}", describe(&output));
    String::from_utf8(output.stdout).expect("stdout is UTF-8").trim().to_owned()
}

/// Reads a piped child's output on threads of their own: stdout line by line
/// into the receiver, stderr (the logs) into the string, so the child never
/// blocks on a full pipe.
pub fn capture_output(child: &mut Child) -> (Receiver<String>, Arc<Mutex<String>>) {
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let sink = logs.clone();
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read @ 1..) = stderr.read(&mut buffer) {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    });
    (lines, logs)
}

fn describe(output: &Output) -> String {
    format!(
        "{}; stdout: {:?}; stderr: {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs blocking work (a child process, a pipe) without stalling the test's other async tasks.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(work),
        Err(_) => work(),
    }
}

/// A `clientele serve` process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub address: SocketAddr,
    /// What it printed on stdout before the listening line (the bootstrap block, if any).
    pub banner: Vec<String>,
    logs: Arc<Mutex<String>>,
    lines: Receiver<String>,
}

impl Server {
    /// Starts `clientele --database-url URL serve --listen 127.0.0.1:0 ARGS...` and waits until it listens.
    pub fn start(database_url: &str, args: &[&str]) -> Self {
        let mut server = Self::spawn(database_url, args);
        server.wait_listening();
        server
    }

    /// Starts the process without waiting: several can then start at the same moment.
    pub fn spawn(database_url: &str, args: &[&str]) -> Self {
        let mut command = command();
        command.arg("--database-url").arg(database_url).args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn clientele serve");
        let (lines, logs) = capture_output(&mut child);
        Self { child, address: ([0, 0, 0, 0], 0).into(), banner: Vec::new(), logs, lines }
    }

    /// Waits for the listening line, collecting the banner before it.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        blocking(|| {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
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
                        let status = self.child.wait();
                        panic!("serve exited before listening ({status:?}); logs: {}", self.logs())
                    }
                }
            }
        });
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged on stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (the platform's "please stop").
    pub fn sigterm(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill -TERM");
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        blocking(|| {
            loop {
                if let Some(status) = self.child.try_wait().expect("wait for the server") {
                    return Some(status);
                }
                if Instant::now() >= deadline {
                    return None;
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    }

    /// The token a first start printed in its bootstrap block, if it printed one.
    pub fn bootstrap_token(&self) -> Option<String> {
        let mut tokens = self.banner.iter().flat_map(|line| line.split_whitespace()).filter(|w| w.starts_with("clt_"));
        tokens.next().map(str::to_owned)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("HTTP client")
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.to_str().expect("ASCII header"))
}

/// A header's value as a number; panics (naming `what`) when it is missing or not a number.
pub fn number_header(headers: &HeaderMap, name: &str, what: &str) -> u64 {
    let value = header(headers, name).unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"));
    value.parse().unwrap_or_else(|_| panic!("{what}: {name} is not a whole number: {value:?}"))
}

/// Asserts an error response (status, JSON envelope of API.md §4, request id);
/// returns its headers and the `error` object.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str, what: &str) -> (HeaderMap, Value) {
    let actual = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{what}: expected {status} {code}, got {actual}: {text}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"), "{what}: content type");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "{what}: {body}");
    let expected_type = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    };
    assert_eq!(error["type"], expected_type, "{what}: {body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: a message: {body}");
    let request_id = header(&headers, "x-request-id").unwrap_or_else(|| panic!("{what}: no X-Request-Id"));
    assert_eq!(error["request_id"], request_id, "{what}: the request id in the body and the header");
    (headers, error)
}

/// A 2xx (or any expected status) with a JSON body; returns the headers and the body.
pub async fn expect_json(response: reqwest::Response, status: u16, what: &str) -> (HeaderMap, Value) {
    let actual = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(actual, status, "{what}: expected {status}, got {actual}: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
    (headers, body)
}

//! The README's examples, run: every `$ command` line in its fenced code
//! blocks is executed, in order, against a fresh `clientele serve` (the real
//! binary, on a temporary SQLite file and a random port), and what it prints
//! must match what the README shows below it, so the README cannot drift from
//! what the server does.
//!
//! * `$ clientele serve` starts the server in an empty directory (as the Quick
//!   start does); its output up to the listening line is compared. Every other
//!   command runs in `bash` in that directory, with the binary on `PATH`,
//!   stderr merged into stdout (what a terminal shows), `localhost:8080` turned
//!   into the server's address, and the shell variables it sets (`ID=...`,
//!   `ACME=$(...)`) kept for the commands after it.
//! * Outputs are compared line by line, exactly, except what differs from run
//!   to run: ids (`cus_`, `tok_`, `acct_`, `req_`, ...) and tokens (`clt_`),
//!   which must correspond one to one (the README's `cus_A` is this run's
//!   `cus_X` everywhere, in commands too); timestamps, dates and Unix seconds;
//!   seconds until a rate-limit window resets; the commit `--version` names. Headers are compared as a set
//!   (their order is not part of HTTP).
//! * `CLIENTELE_UPDATE_README=1 cargo nextest run -E 'test(readme_walk_through)'` rewrites the
//!   README's outputs (and the ids in its commands) from this run instead.
//!
//! Needs `bash` and `curl` (7.84 or newer), like the README itself.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use regex::Regex;

use crate::support::process::{BIN, LISTENING, Server, clean_command, command};
use crate::support::{left_in_window, now, source_root};

const UPDATE_VARIABLE: &str = "CLIENTELE_UPDATE_README";
/// The address the README's examples use; each run's server listens elsewhere.
const README_ADDRESSES: [&str; 2] = ["localhost:8080", "127.0.0.1:8080"];

fn readme_path() -> PathBuf {
    source_root().join("README.md")
}

/// One `$ command` of the README and the output shown under it.
#[derive(Debug, Clone)]
struct Step {
    /// The command, continuation lines (`\` at the end) included, without `$ `.
    command: String,
    /// What the README shows it printing, trailing blank lines dropped.
    expected: String,
    /// 0-based README lines: the command's first, and the output's range.
    command_line: usize,
    output_lines: std::ops::Range<usize>,
    /// The code block's indentation (blocks inside list items are indented).
    indent: String,
}

/// Every `$ ` command in the README's fenced code blocks, in order.
fn steps(readme: &str) -> Vec<Step> {
    let fence = Regex::new(r"^(\s*)```").expect("regex");
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some(open) = fence.captures(lines[index]) else {
            index += 1;
            continue;
        };
        let indent = open[1].to_owned();
        let mut end = index + 1;
        while end < lines.len() && !fence.is_match(lines[end]) {
            end += 1;
        }
        let body: Vec<&str> =
            lines[index + 1..end].iter().map(|line| line.strip_prefix(indent.as_str()).unwrap_or(line)).collect();
        let mut at = 0;
        while at < body.len() {
            let Some(first) = body[at].strip_prefix("$ ") else {
                at += 1;
                continue;
            };
            let command_line = index + 1 + at;
            let mut command = first.to_owned();
            at += 1;
            while command.ends_with('\\') && at < body.len() {
                command.push('\n');
                command.push_str(body[at]);
                at += 1;
            }
            let output_start = at;
            while at < body.len() && !body[at].starts_with("$ ") {
                at += 1;
            }
            let mut output_end = at;
            while output_end > output_start && body[output_end - 1].trim().is_empty() {
                output_end -= 1;
            }
            steps.push(Step {
                command,
                expected: body[output_start..output_end].join("\n"),
                command_line,
                output_lines: index + 1 + output_start..index + 1 + output_end,
                indent: indent.clone(),
            });
        }
        index = end + 1;
    }
    steps
}

/// What varies between runs, found by one regex; group names say how it is compared.
fn volatile() -> Regex {
    Regex::new(concat!(
        // Ids and tokens: must correspond one to one between the README and the run.
        r"(?P<id>\b(?:cus|acct|tok|req|evt|we|whsec)_[0-9A-Za-z]+|\bclt_[0-9A-Za-z]+)",
        r"|(?P<address>\b127\.0\.0\.1:\d+)",
        // Anything at all of the same kind.
        r"|(?P<time>\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)",
        r"|(?P<date>\b[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT)",
        r"|(?P<unix>\b1\d{9}\b)",
        r#"|(?P<reset>(?:x-ratelimit-reset: |retry-after: |reset=|retry-after=|;t=|"reset":)\d+)"#,
        // The commit `clientele --version` names.
        r"|(?P<commit>\(commit (?:[0-9a-f]{40}|unknown)\))",
    ))
    .expect("regex")
}

/// A text cut into literal pieces and volatile ones.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Literal(&'a str),
    Mapped(&'a str),
    Any(&'static str),
}

fn pieces<'a>(text: &'a str, pattern: &Regex) -> Vec<Piece<'a>> {
    let mut pieces = Vec::new();
    let mut last = 0;
    for captures in pattern.captures_iter(text) {
        let whole = captures.get(0).expect("match");
        if whole.start() > last {
            pieces.push(Piece::Literal(&text[last..whole.start()]));
        }
        let kind = ["id", "address", "time", "date", "unix", "reset", "commit"]
            .into_iter()
            .find(|kind| captures.name(kind).is_some())
            .expect("a named group matched");
        pieces.push(match kind {
            "id" | "address" => Piece::Mapped(whole.as_str()),
            "reset" => Piece::Any(if whole.as_str().starts_with(';') { "t" } else { "reset" }),
            other => Piece::Any(other),
        });
        last = whole.end();
    }
    if last < text.len() {
        pieces.push(Piece::Literal(&text[last..]));
    }
    pieces
}

/// Sorts a response's header lines (between the status line and the blank line).
fn sort_headers(output: &str) -> String {
    if !output.starts_with("HTTP/") {
        return output.to_owned();
    }
    let mut lines: Vec<&str> = output.split('\n').collect();
    let end = lines.iter().position(|line| line.is_empty()).unwrap_or(lines.len());
    lines[1..end].sort_by_key(|line| line.to_ascii_lowercase());
    lines.join("\n")
}

/// The README's values and this run's, one to one.
#[derive(Debug, Default)]
struct Correspondence {
    readme_to_run: BTreeMap<String, String>,
    run_to_readme: BTreeMap<String, String>,
}

impl Correspondence {
    fn pair(&mut self, readme: &str, run: &str) -> Result<(), String> {
        let kind = |value: &str| value.split('_').next().unwrap_or_default().to_owned();
        if kind(readme) != kind(run) && !(readme.starts_with("127.") && run.starts_with("127.")) {
            return Err(format!("{readme} in the README where the server printed {run}"));
        }
        match (self.readme_to_run.get(readme), self.run_to_readme.get(run)) {
            (Some(known), _) if known != run => {
                Err(format!("the README's {readme} was {known} in this run, but here the server printed {run}"))
            }
            (_, Some(known)) if known != readme => {
                Err(format!("the server printed {run}, which is the README's {known}, where the README has {readme}"))
            }
            _ => {
                self.readme_to_run.insert(readme.to_owned(), run.to_owned());
                self.run_to_readme.insert(run.to_owned(), readme.to_owned());
                Ok(())
            }
        }
    }

    /// The README's command with this run's values in place of the README's.
    fn to_run(&self, command: &str, address: &str) -> String {
        let mut command = command.to_owned();
        for readme_address in README_ADDRESSES {
            command = command.replace(readme_address, address);
        }
        // Whole ids only: `clt_2mqa` (a token's prefix) is not the token `clt_2mqaBcz...`.
        let id = Regex::new(r"\b(?:cus|acct|tok|req|evt|we|whsec|clt)_[0-9A-Za-z]+").expect("regex");
        id.replace_all(&command, |found: &regex::Captures| {
            self.readme_to_run.get(&found[0]).cloned().unwrap_or_else(|| found[0].to_owned())
        })
        .into_owned()
    }
}

/// Compares one output with the README's, line by line; learns the ids' correspondence.
fn compare(expected: &str, actual: &str, correspondence: &mut Correspondence, pattern: &Regex) -> Result<(), String> {
    let expected = sort_headers(expected);
    let actual = sort_headers(actual);
    let expected_lines: Vec<&str> = expected.split('\n').collect();
    let actual_lines: Vec<&str> = actual.split('\n').collect();
    // Every line is looked at, so that the ids of the lines that do match are
    // learnt even after one that does not (the update mode relies on it).
    let mut first_difference = None;
    for line in 0..expected_lines.len().max(actual_lines.len()) {
        let readme = expected_lines.get(line).copied().unwrap_or("<no line>");
        let run = actual_lines.get(line).copied().unwrap_or("<no line>");
        let (readme_pieces, run_pieces) = (pieces(readme, pattern), pieces(run, pattern));
        let differ = |why: &str| format!("line {}:\n  README: {readme}\n  server: {run}{why}", line + 1);
        let same_shape = readme_pieces.len() == run_pieces.len()
            && readme_pieces.iter().zip(&run_pieces).all(|pair| match pair {
                (Piece::Mapped(_), Piece::Mapped(_)) => true,
                (readme_piece, run_piece) => readme_piece == run_piece,
            });
        let result = if same_shape {
            readme_pieces.iter().zip(&run_pieces).try_for_each(|pair| match pair {
                (Piece::Mapped(readme_value), Piece::Mapped(run_value)) => {
                    correspondence.pair(readme_value, run_value).map_err(|why| differ(&format!("\n  {why}")))
                }
                _ => Ok(()),
            })
        } else {
            Err(differ(""))
        };
        if let Err(difference) = result {
            first_difference.get_or_insert(difference);
        }
    }
    first_difference.map_or(Ok(()), Err)
}

/// `clientele serve` as the Quick start runs it: in `directory`, with the
/// default database (`./clientele.db`), on a random port instead of 8080.
/// Returns the server (killed when dropped) and what it printed on stdout, up
/// to and including the listening line.
fn serve_in(directory: &Path) -> (Server, String) {
    let mut serve = command();
    serve.arg("serve").current_dir(directory).env("CLIENTELE_LISTEN", "127.0.0.1:0");
    let server = Server::start(serve);
    let mut banner = server.banner.clone();
    banner.push(format!("{LISTENING}{}", server.address));
    (server, banner.join("\n"))
}

/// The shell variables a command assigns (`ID=...`, `export TOKEN=...`, `ACME=$(...)`).
fn assigned_variables(command: &str) -> Vec<String> {
    let assignment = Regex::new(r"(?:^|[\s;])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=").expect("regex");
    assignment.captures_iter(command).map(|captures| captures[1].to_owned()).collect()
}

/// A walk-through of the README in one empty directory, with the shell state between commands.
struct Session {
    directory: tempfile::TempDir,
    server: Option<Server>,
    variables: BTreeMap<String, String>,
    correspondence: Correspondence,
    pattern: Regex,
    /// This run's output of each step, for the update mode.
    outputs: Vec<String>,
}

impl Session {
    fn new() -> Self {
        let directory = tempfile::tempdir().expect("temp dir");
        // Every curl of the README stops after 20 s and ignores any proxy in the environment.
        fs::write(directory.path().join(".curlrc"), "max-time = 20\nnoproxy = \"*\"\n").expect("write .curlrc");
        Self {
            directory,
            server: None,
            variables: BTreeMap::new(),
            correspondence: Correspondence::default(),
            pattern: volatile(),
            outputs: Vec::new(),
        }
    }

    /// The server's address (`127.0.0.1:<port>`), or the README's before it runs.
    fn address(&self) -> String {
        self.server.as_ref().map_or_else(|| "127.0.0.1:8080".to_owned(), |server| server.address.to_string())
    }

    fn run(&mut self, step: &Step, update: bool) -> Result<(), String> {
        let output = if step.command.trim() == "clientele serve" {
            let (server, banner) = serve_in(self.directory.path());
            self.server = Some(server);
            banner
        } else {
            self.shell(&step.command)?
        };
        self.outputs.push(output.clone());
        let compared = compare(&step.expected, &output, &mut self.correspondence, &self.pattern);
        if update { Ok(()) } else { compared }
    }

    fn shell(&mut self, readme_command: &str) -> Result<String, String> {
        wait_unless_a_window_has_time_left();
        let command = self.correspondence.to_run(readme_command, &self.address());
        let state = self.directory.path().join(".readme-state");
        let names = assigned_variables(&command);
        let mut script = String::from("exec 2>&1\n");
        for (name, value) in &self.variables {
            script.push_str(&format!("export {name}='{value}'\n"));
        }
        script.push_str(&command);
        script.push_str("\nstatus=$?\n");
        if !names.is_empty() {
            script.push_str(&format!("declare -p {} > '{}' 2>/dev/null\n", names.join(" "), state.display()));
        }
        script.push_str("exit $status\n");

        let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
        let path = std::env::join_paths(
            std::iter::once(bin_dir.to_path_buf())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .expect("PATH");
        let output = clean_command("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(self.directory.path())
            .env("PATH", path)
            .env("CURL_HOME", self.directory.path())
            .output()
            .map_err(|error| format!("cannot run bash: {error}"))?;
        let text = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
        if !output.status.success() {
            return Err(format!("`{command}` exited with {}:\n{text}", output.status));
        }
        if !names.is_empty() {
            let declared = fs::read_to_string(&state).unwrap_or_default();
            let declaration = Regex::new(r#"declare -\S+ ([A-Za-z_][A-Za-z0-9_]*)="(.*)""#).expect("regex");
            for captures in declaration.captures_iter(&declared) {
                self.variables.insert(captures[1].to_owned(), captures[2].to_owned());
            }
        }
        Ok(text.trim_end_matches('\n').to_owned())
    }

    /// The README with this run's outputs, and this run's ids in its commands.
    fn updated_readme(&self, readme: &str, steps: &[Step]) -> String {
        let mut lines: Vec<String> = readme.lines().map(str::to_owned).collect();
        let address = self.address();
        for (step, output) in steps.iter().zip(&self.outputs).rev() {
            let output = output.replace(&address, "127.0.0.1:8080");
            let new_output: Vec<String> = output
                .split_terminator('\n')
                .map(|line| if line.is_empty() { String::new() } else { format!("{}{line}", step.indent) })
                .collect();
            lines.splice(step.output_lines.clone(), new_output);
            let command_lines = step.command.split('\n').count();
            let command = self.correspondence.to_run(&step.command, &address).replace(&address, "localhost:8080");
            let new_command: Vec<String> = command
                .split('\n')
                .enumerate()
                .map(|(at, line)| format!("{}{}{line}", step.indent, if at == 0 { "$ " } else { "" }))
                .collect();
            lines.splice(step.command_line..step.command_line + command_lines, new_command);
        }
        lines.join("\n") + "\n"
    }
}

/// A command whose requests straddle the end of a 10 s window (the README's
/// `3/10s` token) sees its count restart; such a window's last 1.5 s are waited out.
fn wait_unless_a_window_has_time_left() {
    let left = left_in_window(10);
    if left < Duration::from_millis(1500) {
        thread::sleep(left);
    }
}

/// The current minute-long rate-limit window (aligned to the epoch).
fn unix_minute() -> i64 {
    now() / 60
}

/// Runs every step; on a mismatch, says which README line and what differs.
fn walk_through(steps: &[Step], update: bool) -> (Session, Result<(), String>) {
    let mut session = Session::new();
    for step in steps {
        if let Err(why) = session.run(step, update) {
            let line = step.command_line + 1;
            return (session, Err(format!("README.md line {line}: $ {}\n{why}", step.command)));
        }
    }
    (session, Ok(()))
}

#[test]
fn the_readme_walk_through_runs_as_written() {
    let readme = fs::read_to_string(readme_path()).expect("README.md");
    let steps = steps(&readme);
    assert!(steps.len() >= 15, "the README's examples were found ({} steps)", steps.len());
    assert_eq!(steps[0].command, "clientele serve", "the first example starts the server");
    let update = std::env::var_os(UPDATE_VARIABLE).is_some();

    // Rate-limit counts run on in one window of a minute (aligned to the epoch):
    // a run that crosses into the next one sees them restart, so it runs again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let minute = unix_minute();
        let (session, result) = walk_through(&steps, update);
        let crossed_a_window = unix_minute() != minute;
        if crossed_a_window && (update || result.is_err()) && attempt < 3 {
            continue;
        }
        if update {
            assert!(!crossed_a_window, "the run crossed a rate-limit window; run it again");
            fs::write(readme_path(), session.updated_readme(&readme, &steps)).expect("write README.md");
            return;
        }
        if let Err(why) = result {
            panic!(
                "the README and the server disagree (rewrite the README's outputs from a real run with \
                 {UPDATE_VARIABLE}=1 cargo nextest run -E 'test(readme_walk_through)', and review the diff):\n{why}"
            );
        }
        return;
    }
}

// The comparison itself: it tells what it must tell apart.

#[test]
fn outputs_match_up_to_ids_and_times_only() {
    let pattern = volatile();
    let readme = "HTTP/1.1 201 Created\nlocation: /v2/customers/cus_A1\nx-request-id: req_R1\ndate: Sat, 28 Nov 2026 16:31:02 GMT\n\n\
                  {\"id\":\"cus_A1\",\"created\":1795883462,\"created_at\":\"2026-11-28T16:31:02Z\",\"request\":\"req_R1\"}";
    let run = "HTTP/1.1 201 Created\nx-request-id: req_Q9\nlocation: /v2/customers/cus_B2\ndate: Mon, 30 Nov 2026 09:00:00 GMT\n\n\
               {\"id\":\"cus_B2\",\"created\":1796000000,\"created_at\":\"2026-11-30T09:00:00Z\",\"request\":\"req_Q9\"}";
    let mut correspondence = Correspondence::default();
    compare(readme, run, &mut correspondence, &pattern).expect("same up to ids and times");
    assert_eq!(
        correspondence.to_run("curl localhost:8080/v2/customers/cus_A1", "127.0.0.1:5"),
        "curl 127.0.0.1:5/v2/customers/cus_B2"
    );

    for (readme, run) in [
        ("HTTP/1.1 201 Created", "HTTP/1.1 200 OK"),
        ("x-ratelimit-remaining: 99", "x-ratelimit-remaining: 98"),
        ("{\"id\":\"cus_A1\",\"version\":1}", "{\"id\":\"cus_B2\",\"version\":2}"),
        // The README's cus_A1 is this run's cus_B2: another id in its place is a different customer.
        ("{\"id\":\"cus_A1\"}", "{\"id\":\"cus_C3\"}"),
        ("{\"has_more\":true}", "{\"has_more\":true,\"extra\":1}"),
        ("one line", "one line\nand another"),
    ] {
        let mut known = Correspondence::default();
        known.pair("cus_A1", "cus_B2").expect("a first pair");
        assert!(compare(readme, run, &mut known, &pattern).is_err(), "{readme:?} must not match {run:?}");
    }
}

#[test]
fn commands_and_their_outputs_are_read_from_fenced_blocks() {
    let readme = "text\n\n```\n$ curl -si localhost:8080/x \\\n    -d '{}'\nHTTP/1.1 200 OK\n\n{}\n\n$ echo hi\nhi\n```\n\n\
                  - item\n\n  ```\n  $ ID=$(echo 1)\n  ```\n";
    let steps = steps(readme);
    let commands: Vec<&str> = steps.iter().map(|step| step.command.as_str()).collect();
    assert_eq!(commands, ["curl -si localhost:8080/x \\\n    -d '{}'", "echo hi", "ID=$(echo 1)"]);
    assert_eq!(steps[0].expected, "HTTP/1.1 200 OK\n\n{}");
    assert_eq!((steps[1].expected.as_str(), steps[2].expected.as_str(), steps[2].indent.as_str()), ("hi", "", "  "));
    assert_eq!(assigned_variables("export ID=cus_1; ACME=$(x)"), ["ID", "ACME"]);
}

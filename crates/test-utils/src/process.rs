//! Child processes of tests: killed (and reaped) when the guard is dropped, so a failing test
//! leaves no server behind; waiting for a port or a line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A running child process, killed when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Spawns `command`; `what` names it in panics ("anvil", "tansu", …) with how to get it.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}; run scripts/install-tools"));
        Self {
            child: Some(child),
            what: what.to_owned(),
        }
    }

    /// Waits until `port` on loopback accepts connections, or panics after `timeout` (or when
    /// the child exits first).
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.exited() {
                panic!("{} exited before opening port {port}: {status}", self.what);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not open port {port}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the child prints `line` (trimmed) on its piped stdout, or panics after
    /// `timeout`; the rest of its output is drained in the background.
    pub fn wait_for_line(&mut self, line: &str, timeout: Duration) {
        let stdout = self
            .child_mut()
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{}'s stdout is not piped", self.what));
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = line.to_owned();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if l.trim() == wanted {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + timeout;
        while rx.recv_timeout(Duration::from_millis(200)).is_err() {
            if let Some(status) = self.exited() {
                panic!("{} exited: {status}", self.what);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {line:?}",
                self.what
            );
        }
    }

    /// The exit status, if the child has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child_mut().try_wait().ok().flatten()
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the child at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (an orderly stop: the child may write its state) and waits for the exit.
    pub fn terminate(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is running")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

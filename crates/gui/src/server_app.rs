//! The server window: start and stop a server, and watch who is online, the transfers, the
//! port pool and the log.

use server::{Config, Server, ServerHandle, UdpPorts};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Lines of log kept for the window.
const LOG_LINES: usize = 2000;

/// The log lines the window shows; a `tracing` writer fills it.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<VecDeque<String>>>);

impl LogBuffer {
    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Appends one line, dropping the oldest past the limit.
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in String::from_utf8_lossy(buf)
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            self.push(line.to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server window's state.
pub struct ServerApp {
    runtime: tokio::runtime::Handle,
    /// Address to listen on.
    pub bind: String,
    /// Shared folder.
    pub files: String,
    /// UDP ports, `LO-HI`.
    pub ports: String,
    running: Option<ServerHandle>,
    /// A server binding on the runtime: its outcome comes back here, read each frame, so the
    /// window never waits for the sockets (or for a first start's TLS key) on its own thread.
    starting: Option<oneshot::Receiver<Result<ServerHandle, String>>>,
    error: Option<String>,
    log: LogBuffer,
    /// Per transfer: when and how many bytes we last looked, and the rate then (bits/s).
    rates: HashMap<u64, (Instant, u64, u64)>,
}

impl ServerApp {
    /// A stopped server window; `log` is where the server's tracing output lands.
    pub fn new(runtime: tokio::runtime::Handle, log: LogBuffer) -> Self {
        Self {
            runtime,
            bind: "0.0.0.0:50000".into(),
            files: "./files".into(),
            ports: "55000-55015".into(),
            running: None,
            starting: None,
            error: None,
            log,
            rates: HashMap::new(),
        }
    }

    /// The running server, if any (none while it is still starting).
    pub fn handle(&self) -> Option<&ServerHandle> {
        self.running.as_ref()
    }

    /// True from [`ServerApp::start`] until the server is listening or has failed to.
    pub fn is_starting(&self) -> bool {
        self.starting.is_some()
    }

    /// Starts a server with the window's settings (or `config`, if given). It binds on the
    /// runtime; the window shows "starting..." until [`ServerApp::show`] hears how it went.
    pub fn start(&mut self, config: Option<Config>) {
        if self.running.is_some() || self.starting.is_some() {
            return;
        }
        let config = config.map_or_else(|| self.config(), Ok).and_then(|config| {
            config.validate().map_err(|e| e.to_string())?;
            Ok(config)
        });
        let config = match config {
            Ok(config) => config,
            Err(why) => {
                self.error = Some(why);
                return;
            }
        };
        self.files = config.files_dir.display().to_string();
        self.error = None;
        let (done, outcome) = oneshot::channel();
        self.starting = Some(outcome);
        self.runtime.spawn(async move {
            let started = async { Server::bind(config).await?.spawn() }.await;
            if let Err(Ok(orphan)) = done.send(started.map_err(|e| e.to_string())) {
                orphan.stop().await; // the window is gone: nobody could stop it later
            }
        });
    }

    /// Takes in the outcome of a start, once the runtime has it.
    fn poll_start(&mut self) {
        let Some(outcome) = &mut self.starting else {
            return;
        };
        let started = match outcome.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return,
            Ok(started) => started,
            Err(oneshot::error::TryRecvError::Closed) => Err("the server task ended".into()),
        };
        self.starting = None;
        match started {
            Ok(handle) => {
                self.log.push(format!("listening on {}", handle.addr()));
                self.log
                    .push(format!("TLS key fingerprint {}", handle.fingerprint()));
                // Show what is really in use (the port may have been chosen by the OS).
                self.bind = handle.addr().to_string();
                self.error = None;
                self.running = Some(handle);
            }
            Err(err) => self.error = Some(err),
        }
    }

    /// Stops the running server (clients are told it is shutting down).
    pub fn stop(&mut self) {
        if let Some(handle) = self.running.take() {
            self.log.push("stopping".into());
            self.runtime.spawn(handle.stop());
        }
    }

    fn config(&self) -> Result<Config, String> {
        let bind = self
            .bind
            .trim()
            .parse()
            .map_err(|e| format!("bad address {:?}: {e}", self.bind))?;
        let udp_ports: UdpPorts = self
            .ports
            .parse()
            .map_err(|e| format!("bad port range {:?}: {e}", self.ports))?;
        Ok(Config {
            bind,
            files_dir: self.files.trim().into(),
            udp_ports,
            ..Config::default()
        })
    }

    /// Draws the window.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll_start();
        // Users and transfers change without any input: look again a few times a second.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(250));
        egui::Panel::top("controls").show(ui, |ui| {
            ui.horizontal(|ui| {
                let running = self.running.is_some();
                let starting = self.starting.is_some();
                ui.add_enabled_ui(!running && !starting, |ui| {
                    let l = ui.label("Listen on");
                    ui.add(egui::TextEdit::singleline(&mut self.bind).desired_width(150.0))
                        .labelled_by(l.id);
                    let l = ui.label("Files");
                    ui.add(egui::TextEdit::singleline(&mut self.files).desired_width(220.0))
                        .labelled_by(l.id);
                    let l = ui.label("UDP ports");
                    ui.add(egui::TextEdit::singleline(&mut self.ports).desired_width(100.0))
                        .labelled_by(l.id);
                });
                if running {
                    if ui.button("Stop").clicked() {
                        self.stop();
                    }
                } else if ui
                    .add_enabled(!starting, egui::Button::new("Start"))
                    .clicked()
                {
                    self.start(None);
                }
            });
            match (&self.running, &self.error) {
                (_, Some(err)) => {
                    ui.colored_label(egui::Color32::from_rgb(220, 60, 60), err);
                }
                (Some(handle), None) => {
                    ui.label(format!("running on {}", handle.addr()));
                    ui.horizontal(|ui| {
                        ui.label("Key fingerprint (clients compare it):");
                        ui.label(egui::RichText::new(handle.fingerprint().to_string()).monospace());
                    });
                }
                (None, None) if self.starting.is_some() => {
                    ui.label("starting...");
                }
                (None, None) => {
                    ui.label("stopped");
                }
            }
        });
        egui::Panel::bottom("log")
            .default_size(180.0)
            .resizable(true)
            .show(ui, |ui| {
                ui.heading("Log");
                egui::ScrollArea::vertical()
                    .stick_to_bottom(true)
                    .auto_shrink(false)
                    .show(ui, |ui| {
                        for line in self.log.lines() {
                            ui.label(egui::RichText::new(line).monospace().small());
                        }
                    });
            });
        let users = self.running.as_ref().map(|h| h.users()).unwrap_or_default();
        egui::Panel::left("users")
            .default_size(180.0)
            .show(ui, |ui| {
                ui.heading(format!("Online ({})", users.len()));
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for user in &users {
                        ui.label(user);
                    }
                });
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(handle) = &self.running else {
                ui.label("Start the server to see its transfers.");
                return;
            };
            let transfers = handle.transfers();
            let (size, free) = (transfers.pool_size(), transfers.free_ports());
            ui.heading("Transfers");
            ui.label(format!("UDP ports in use: {} of {size}", size - free));
            let used = if size == 0 {
                0.0
            } else {
                (size - free) as f32 / size as f32
            };
            ui.add(egui::ProgressBar::new(used));
            let list = transfers.list();
            let now = Instant::now();
            self.rates.retain(|id, _| list.iter().any(|t| t.id == *id));
            egui::Grid::new("transfers")
                .num_columns(5)
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("id");
                    ui.strong("file");
                    ui.strong("user");
                    ui.strong("UDP port");
                    ui.strong("rate");
                    ui.end_row();
                    for t in &list {
                        ui.label(t.id.to_string());
                        ui.label(&t.file);
                        ui.label(&t.user);
                        ui.label(t.port.map_or("queued".into(), |p| p.to_string()));
                        // Sent bytes over the last half second or so.
                        let entry = self.rates.entry(t.id).or_insert((now, t.bytes_sent, 0));
                        let elapsed = now.saturating_duration_since(entry.0);
                        if elapsed >= Duration::from_millis(500) {
                            let bits = t.bytes_sent.saturating_sub(entry.1) * 8;
                            let rate = (bits as f64 / elapsed.as_secs_f64()) as u64;
                            *entry = (now, t.bytes_sent, rate);
                        }
                        ui.label(format!("{}/s", display::human_size(entry.2 / 8)));
                        ui.end_row();
                    }
                });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime that runs nothing until the test drives it: whatever `start` did on the
    /// calling thread is all that happened before it returned.
    fn idle_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn start_returns_at_once_and_the_window_hears_later_that_it_listens() {
        let rt = idle_runtime();
        let files = tempfile::tempdir().unwrap();
        let mut app = ServerApp::new(rt.handle().clone(), LogBuffer::default());
        app.start(Some(Config::local(files.path(), 1)));
        assert!(app.is_starting(), "nothing bound on the UI thread");
        assert!(app.handle().is_none());
        for _ in 0..500 {
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
            app.poll_start();
            if !app.is_starting() {
                break;
            }
        }
        let handle = app.handle().expect("listening");
        assert_eq!(app.bind, handle.addr().to_string());
        assert!(app.error.is_none());
        app.stop();
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }

    #[test]
    fn a_bad_port_range_is_refused_in_place_without_starting() {
        let rt = idle_runtime();
        let mut app = ServerApp::new(rt.handle().clone(), LogBuffer::default());
        app.ports = "9000-8000".into();
        app.start(None);
        assert!(!app.is_starting());
        let error = app.error.clone().unwrap_or_default();
        assert!(
            error.contains("9000-8000") && error.contains("LO <= HI"),
            "{error}"
        );
    }

    #[test]
    fn a_config_that_fails_validation_is_refused_in_place() {
        let rt = idle_runtime();
        let mut app = ServerApp::new(rt.handle().clone(), LogBuffer::default());
        let config = Config {
            max_clients: 0,
            ..Config::local(".", 1)
        };
        app.start(Some(config));
        assert!(!app.is_starting());
        assert_eq!(
            app.error.as_deref(),
            Some("--max-clients must be at least 1")
        );
    }
}

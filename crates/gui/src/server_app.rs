//! The server window: start and stop a server, and watch who is online, the transfers, the
//! port pool and the log.

use server::{Config, Server, ServerHandle, UdpPorts};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
            error: None,
            log,
            rates: HashMap::new(),
        }
    }

    /// The running server, if any.
    pub fn handle(&self) -> Option<&ServerHandle> {
        self.running.as_ref()
    }

    /// Starts a server with the window's settings (or `config`, if given).
    pub fn start(&mut self, config: Option<Config>) {
        let config = match config.map_or_else(|| self.config(), Ok) {
            Ok(config) => config,
            Err(why) => {
                self.error = Some(why);
                return;
            }
        };
        let files = config.files_dir.display().to_string();
        let started = self
            .runtime
            .block_on(async { Server::bind(config).await?.spawn() });
        self.files = files;
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
            Err(err) => self.error = Some(err.to_string()),
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
        let (lo, hi) = self
            .ports
            .split_once('-')
            .and_then(|(lo, hi)| {
                Some((
                    lo.trim().parse::<u16>().ok()?,
                    hi.trim().parse::<u16>().ok()?,
                ))
            })
            .filter(|(lo, hi)| *lo > 0 && lo <= hi)
            .ok_or_else(|| format!("bad port range {:?}; use LO-HI", self.ports))?;
        Ok(Config {
            bind,
            files_dir: self.files.trim().into(),
            udp_ports: UdpPorts::Range(lo..=hi),
            ..Config::default()
        })
    }

    /// Draws the window.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        // Users and transfers change without any input: look again a few times a second.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(250));
        egui::Panel::top("controls").show(ui, |ui| {
            ui.horizontal(|ui| {
                let running = self.running.is_some();
                ui.add_enabled_ui(!running, |ui| {
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
                } else if ui.button("Start").clicked() {
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
                        ui.label(format!("{}/s", client::human_size(entry.2 / 8)));
                        ui.end_row();
                    }
                });
        });
    }
}

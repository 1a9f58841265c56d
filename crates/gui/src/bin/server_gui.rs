//! `messenger-server-gui`: the server with a window.

use gui::{LogBuffer, ServerApp};

fn main() -> anyhow::Result<()> {
    let log = LogBuffer::default();
    let writer = log.clone();
    // The log goes to the window's panel, as plain text.
    logging::init("info", move || writer.clone(), false);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut app = ServerApp::new(runtime.handle().clone(), log);
    app.start(None);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("messenger server")
            .with_inner_size([900.0, 600.0]),
        ..Default::default()
    };
    eframe::run_native(
        "messenger-server",
        options,
        Box::new(|_cc| Ok(Box::new(Window(app)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(())
}

struct Window(ServerApp);

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.show(ui);
    }
}

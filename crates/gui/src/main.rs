//! `messenger-gui`: the desktop chat client.

use gui::ClientApp;
use gui::net::Net;
use std::sync::Arc;

const STORE_KEY: &str = "connect";

fn main() -> anyhow::Result<()> {
    logging::to_stderr("warn");
    let runtime = tokio::runtime::Runtime::new()?;
    let handle = runtime.handle().clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("messenger")
            .with_inner_size([1000.0, 680.0]),
        ..Default::default()
    };
    eframe::run_native(
        "messenger",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let net = Net::start(&handle, Arc::new(move || ctx.request_repaint()));
            let (addr, name): (String, String) = cc
                .storage
                .and_then(|s| eframe::get_value(s, STORE_KEY))
                .unwrap_or_else(|| ("127.0.0.1:50000".into(), String::new()));
            let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
            Ok(Box::new(Window(ClientApp::new(net, addr, name, dir))))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    drop(runtime);
    Ok(())
}

struct Window(ClientApp);

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, STORE_KEY, &(&self.0.addr, &self.0.name));
    }
}

//! Where `ddb up` and its children's lines go, each prefixed `[name] `.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where `ddb up` and its children's lines go, each prefixed `[name] `.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    color: bool,
}

impl Console {
    pub fn new<W: Write + Send + 'static>(out: W, color: bool) -> Self {
        Console {
            out: Arc::new(Mutex::new(out)),
            color,
        }
    }

    /// Whether lines are coloured (the children are then told not to colour theirs twice).
    pub fn color(&self) -> bool {
        self.color
    }

    /// A line from `ddb up` itself.
    pub fn say(&self, text: &str) {
        self.line("ddb", text);
    }

    pub fn line(&self, who: &str, text: &str) {
        let prefix = if self.color {
            format!("\x1b[{}m[{who}]\x1b[0m ", color_of(who))
        } else {
            format!("[{who}] ")
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{prefix}{text}");
            let _ = out.flush();
        }
    }
}

fn color_of(who: &str) -> &'static str {
    match who {
        "ddb" => "1",
        "nats" => "36",
        "master" => "32",
        "gui" => "34",
        "cargo" | "build" => "2",
        other => {
            let n: usize = other.bytes().map(usize::from).sum();
            ["33", "35", "93", "95", "96"][n % 5]
        }
    }
}

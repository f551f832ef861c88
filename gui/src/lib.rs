//! ddb-gui: the iced desktop client. Pick a target node and an operation, fill in its
//! fields, press Execute; watch every node's heartbeat live.
//!
//! Layout of the crate (after iced's `todos` example and halloy):
//! - [`app`]: state, `Message`, `update`, subscriptions;
//! - [`form`]: op → fields, validation and request building (plain functions);
//! - [`nodes`]: heartbeats and liveness; [`results`]: replies; [`history`]: recent requests;
//! - [`verify`]: the Verify button's result (the comparison itself is [`ddb::verify`]);
//! - [`connection`]: the `Subscription::run_with` worker that owns the NATS connection;
//! - [`script`]: `--script` replay; [`cli`]: flags; `view`: widgets only.

pub mod app;
pub mod cli;
pub mod connection;
pub mod form;
pub mod history;
pub mod nodes;
pub mod results;
pub mod script;
pub mod verify;
pub mod view;

pub use app::{App, Config, Message};

/// Opens the window and runs until it is closed.
pub fn run(config: Config, window: cli::Window) -> iced::Result {
    let theme = if window.dark {
        iced::Theme::Dark
    } else {
        iced::Theme::Light
    };
    iced::application(move || App::boot(config.clone()), App::update, view::view)
        .title(App::title)
        .subscription(App::subscription)
        .theme(move |_: &App| theme.clone())
        .window_size(iced::Size::new(window.width, window.height))
        .run()
}

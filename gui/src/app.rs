//! The application: state, messages, `update` and subscriptions. Layout lives in `view/`;
//! NATS lives in `connection` and is reached only through its events and command handle.

use crate::connection::{self, Command, Commands, Event, Link, Request, Settings, VerifyJob};
use crate::form::{self, Field, Form, OpKind};
use crate::history::{Entry, History};
use crate::nodes::{Nodes, TargetOption};
use crate::results::{first_page, Done, Outcome, Pending, ResultView};
use crate::script::{self, Step};
use crate::verify::{Verified, VerifyPending};
use ddb::client::Target;
use iced::keyboard::{self, key};
use iced::{Subscription, Task};
use serde_json::Value as Json;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the command line decided.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// Nodes to list before any heartbeat (`--node`).
    pub nodes: Vec<String>,
    /// Requests to run at startup (`--script`).
    pub script: Vec<Step>,
}

impl Config {
    pub fn new(settings: Settings) -> Self {
        Config {
            settings,
            nodes: Vec::new(),
            script: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct App {
    pub settings: Settings,
    pub form: Form,
    pub target: Target,
    pub nodes: Nodes,
    pub link: Link,
    /// Why the connection could not be set up, while that is the case.
    pub link_error: Option<String>,
    commands: Option<Commands>,
    pub outcome: Outcome,
    pub result_view: ResultView,
    pub history: History,
    /// A request-level problem shown under the Execute button.
    pub notice: Option<String>,
    /// The seq of the last successful write, for read-your-writes.
    pub last_write_seq: Option<u64>,
    next_id: u64,
    /// Animation frame of the spinner.
    pub spinner: usize,
    script: VecDeque<Step>,
    /// A `--script` is loaded and its last reply has not come yet.
    script_running: bool,
}

#[derive(Debug, Clone)]
pub enum Message {
    Form(form::Message),
    TargetSelected(TargetOption),
    /// The Execute button, or Enter.
    Execute,
    Connection(Event),
    Tick(Instant),
    ResultView(ResultView),
    CopyResult,
    /// Sends the refused write of the last result to `<prefix>.ops`.
    ResendToWriter,
    /// Sends the last SEARCH again with `after` = its reply's `next`, to the same target.
    NextPage,
    /// Fills min_seq with the seq of the last write.
    UseLastSeq,
    /// The Verify button: CHECKSUM every table on every live node and compare.
    Verify,
    HistorySelected(usize),
    ClearHistory,
    FocusNext,
    FocusPrevious,
}

impl App {
    pub fn new(config: Config) -> Self {
        App {
            nodes: Nodes::with_names(&config.nodes),
            settings: config.settings,
            form: Form::default(),
            target: Target::Writer,
            link: Link::Connecting,
            link_error: None,
            commands: None,
            outcome: Outcome::Idle,
            result_view: ResultView::Table,
            history: History::default(),
            notice: None,
            last_write_seq: None,
            next_id: 1,
            spinner: 0,
            script_running: !config.script.is_empty(),
            script: config.script.into(),
        }
    }

    pub fn boot(config: Config) -> (Self, Task<Message>) {
        (App::new(config), Task::none())
    }

    pub fn title(&self) -> String {
        format!(
            "ddb — {} ({})",
            self.settings.servers(),
            self.settings.prefix
        )
    }

    pub fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    /// The options of the target picker, and the selected one.
    pub fn target_options(&self) -> (Vec<TargetOption>, TargetOption) {
        let options = self.nodes.targets(self.prefix());
        let selected = options
            .iter()
            .find(|o| o.target == self.target)
            .cloned()
            .unwrap_or_else(|| TargetOption::plain(self.prefix(), &self.target));
        (options, selected)
    }

    /// The NATS subject a target resolves to (what the `nats req` preview shows).
    pub fn subject(&self, target: &Target) -> String {
        let subjects = ddb::subjects::Subjects::new(self.prefix());
        match target {
            Target::Writer => subjects.ops().to_owned(),
            Target::AnyReplica => subjects.reads().to_owned(),
            Target::Node(n) => subjects.node(n),
        }
    }

    /// Whether Execute can be pressed now.
    pub fn can_execute(&self) -> bool {
        !self.outcome.is_pending()
    }

    /// Whether Verify can be pressed now (it says why it cannot run when pressed).
    pub fn can_verify(&self) -> bool {
        !self.outcome.is_pending()
    }

    pub fn steps_left(&self) -> usize {
        self.script.len()
    }

    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Form(m) => {
                self.form.update(m);
                self.notice = None;
                Task::none()
            }
            Message::TargetSelected(option) => {
                self.target = option.target;
                Task::none()
            }
            Message::Execute => {
                self.execute();
                Task::none()
            }
            Message::Connection(event) => {
                self.on_connection(event);
                Task::none()
            }
            Message::Tick(now) => {
                self.nodes.tick(now);
                self.spinner = self.spinner.wrapping_add(1);
                self.advance_script();
                Task::none()
            }
            Message::ResultView(v) => {
                self.result_view = v;
                Task::none()
            }
            Message::CopyResult => match &self.outcome {
                Outcome::Done(done) => iced::clipboard::write(done.raw_json()),
                _ => Task::none(),
            },
            Message::ResendToWriter => {
                if let Outcome::Done(done) = &self.outcome {
                    if done.can_resend_to_writer() {
                        let request = done.request.clone();
                        let form =
                            Form::from_request(&request).unwrap_or_else(|_| self.form.clone());
                        self.target = Target::Writer;
                        let page = first_page(form.op, &request);
                        self.send(Target::Writer, request, form, page);
                    }
                }
                Task::none()
            }
            Message::NextPage => {
                self.next_page();
                Task::none()
            }
            Message::UseLastSeq => {
                if let Some(seq) = self.last_write_seq {
                    self.form
                        .update(form::Message::Edited(Field::MinSeq, seq.to_string()));
                }
                Task::none()
            }
            Message::Verify => {
                self.verify();
                Task::none()
            }
            Message::HistorySelected(index) => {
                if let Some(entry) = self.history.get(index).cloned() {
                    self.form = entry.form;
                    self.target = entry.target;
                    self.notice = None;
                    if let Some(done) = entry.done {
                        if !self.outcome.is_pending() {
                            self.outcome = Outcome::Done(Box::new(done));
                        }
                    }
                }
                Task::none()
            }
            Message::ClearHistory => {
                self.history.clear();
                Task::none()
            }
            Message::FocusNext => iced::widget::operation::focus_next(),
            Message::FocusPrevious => iced::widget::operation::focus_previous(),
        }
    }

    /// Builds the request from the form and hands it to the connection worker.
    fn execute(&mut self) {
        if self.outcome.is_pending() {
            return;
        }
        match self.form.build_request() {
            Ok(request) => {
                let form = self.form.clone();
                let page = first_page(form.op, &request);
                self.send(self.target.clone(), request, form, page);
            }
            Err(e) => self.notice = Some(e.to_string()),
        }
    }

    /// The next page of the SEARCH shown. The form is left as the user has it (Execute
    /// still asks for the first page); the history entry gets the page's own form, cursor
    /// included, so that reloading it shows what was sent.
    fn next_page(&mut self) {
        let Outcome::Done(done) = &self.outcome else {
            return;
        };
        let Some(request) = done.next_page_request() else {
            return;
        };
        let target = done.target.clone();
        let page = done.page.map(|n| n + 1);
        let form = Form::from_request(&request).unwrap_or_else(|_| self.form.clone());
        self.send(target, request, form, page);
    }

    fn send(&mut self, target: Target, request: Json, form: Form, page: Option<u32>) {
        let Some(commands) = self.commands.as_mut() else {
            self.notice = Some(format!(
                "not connected to NATS yet ({}); the request was not sent",
                self.settings.servers()
            ));
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let command = Command::Request(Request {
            id,
            target: target.clone(),
            payload: request.clone(),
        });
        if let Err(e) = commands.send(command) {
            self.notice = Some(e);
            return;
        }
        let target_label = self.nodes.target_label(&self.settings.prefix, &target);
        let title = match page {
            Some(n) if n > 1 => format!("{} · page {n}", form.title()),
            _ => form.title(),
        };
        self.history.push(Entry {
            id,
            form: form.clone(),
            target: target.clone(),
            title: title.clone(),
            target_label: target_label.clone(),
            done: None,
        });
        self.outcome = Outcome::Pending(Pending {
            id,
            op: form.op,
            title,
            target,
            target_label,
            request,
            page,
            started: Instant::now(),
        });
        self.notice = None;
    }

    /// Hands a verification of the nodes alive now (every database they report) to the
    /// worker; the result area shows it when it comes back.
    fn verify(&mut self) {
        if self.outcome.is_pending() {
            return;
        }
        let Some(commands) = self.commands.as_mut() else {
            self.notice = Some(format!(
                "not connected to NATS yet ({}); nothing was verified",
                self.settings.servers()
            ));
            return;
        };
        let live = self.nodes.live_heartbeats();
        if live.is_empty() {
            self.notice = Some(format!(
                "no live node to verify: no heartbeat on {}.hb.* lately",
                self.settings.prefix
            ));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let nodes = live.iter().map(|hb| hb.node.clone()).collect();
        if let Err(e) = commands.send(Command::Verify(VerifyJob { id, nodes: live })) {
            self.notice = Some(e);
            return;
        }
        self.outcome = Outcome::Verifying(VerifyPending {
            id,
            nodes,
            started: Instant::now(),
        });
        self.notice = None;
    }

    fn on_connection(&mut self, event: Event) {
        match event {
            Event::Ready(commands) => {
                self.commands = Some(commands);
                self.link_error = None;
            }
            Event::Link(link) => {
                self.link = link;
                if link == Link::Connected {
                    self.link_error = None;
                }
            }
            Event::Failed(e) => {
                self.link = Link::Disconnected;
                self.link_error = Some(e);
            }
            Event::Heartbeat(hb, at) => {
                self.nodes.heartbeat(hb, at);
                self.advance_script();
            }
            Event::Response {
                id,
                result,
                elapsed,
            } => {
                let Outcome::Pending(pending) = &self.outcome else {
                    return;
                };
                if pending.id != id {
                    return;
                }
                let pending = pending.clone();
                let done = Done::from_pending(pending, result, elapsed);
                // A TRANSACTION that failed in one op: that op, in the form that sent it,
                // says so and shows its fields.
                if let (Some(e), Some(node)) = (done.error(), done.node()) {
                    if let Some(i) = e.op_index {
                        let why = format!("failed on {node}: {}: {}", e.code, e.message);
                        self.form.mark_failed_op(&done.request, i, &why);
                    }
                }
                if done.is_ok() && done.op.is_write() {
                    if let Some(seq) = done.reply().and_then(|r| r.seq) {
                        self.last_write_seq = Some(self.last_write_seq.unwrap_or(0).max(seq));
                    }
                }
                if self.script_running {
                    tracing::info!(request = %done.request, outcome = %done.summary(), "script step done");
                    if !done.is_ok() && !self.script.is_empty() {
                        self.notice = Some(format!(
                            "script stopped: {} failed ({})",
                            done.title,
                            done.summary()
                        ));
                        tracing::error!("script stopped: {} failed", done.title);
                        self.script.clear();
                    }
                    if self.script.is_empty() {
                        self.script_running = false;
                        tracing::info!("script finished");
                    }
                }
                self.history.complete(done.clone());
                self.outcome = Outcome::Done(Box::new(done));
                self.result_view = ResultView::Table;
                self.advance_script();
            }
            Event::Verified {
                id,
                report,
                elapsed,
            } => {
                if !matches!(&self.outcome, Outcome::Verifying(p) if p.id == id) {
                    return;
                }
                self.outcome = Outcome::Verified(Verified {
                    id,
                    report,
                    elapsed,
                });
                self.advance_script();
            }
        }
    }

    /// Runs the next `--script` step once nothing is pending and its target is alive.
    fn advance_script(&mut self) {
        let Some(step) = self.script.front() else {
            return;
        };
        if self.outcome.is_pending() || self.commands.is_none() || !self.is_connected() {
            return;
        }
        let ready = match &step.target {
            Target::Writer => !self.nodes.writers().is_empty(),
            Target::AnyReplica => self.nodes.alive_count() > 0,
            Target::Node(name) => self
                .nodes
                .get(name)
                .is_some_and(|n| n.is_alive(self.nodes.now)),
        };
        if !ready {
            return;
        }
        let Some(step) = self.script.pop_front() else {
            return;
        };
        let request = script::substitute(&step.request, self.last_write_seq.unwrap_or(0));
        match Form::from_request(&request) {
            Ok(form) => {
                self.form = form;
                self.target = step.target;
                self.execute();
            }
            Err(e) => {
                tracing::error!(line = step.line, error = %e, "script stopped");
                self.notice = Some(format!("script line {}: {e}", step.line));
                self.script.clear();
                self.script_running = false;
            }
        }
    }

    pub fn subscription(&self) -> Subscription<Message> {
        let tick = if self.outcome.is_pending() {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(250)
        };
        Subscription::batch([
            connection::subscription(self.settings.clone()).map(Message::Connection),
            iced::time::every(tick).map(Message::Tick),
            keyboard::listen().filter_map(key_message),
        ])
    }

    /// The number of history entries (for tests and the panel title).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The current op.
    pub fn op(&self) -> OpKind {
        self.form.op
    }
}

/// Keys the app handles when no widget took them: Enter executes, Tab moves the focus.
fn key_message(event: keyboard::Event) -> Option<Message> {
    match event {
        keyboard::Event::KeyPressed {
            key: keyboard::Key::Named(key::Named::Enter),
            ..
        } => Some(Message::Execute),
        keyboard::Event::KeyPressed {
            key: keyboard::Key::Named(key::Named::Tab),
            modifiers,
            ..
        } => Some(if modifiers.shift() {
            Message::FocusPrevious
        } else {
            Message::FocusNext
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

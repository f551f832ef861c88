//! The nodes panel: one line per node with its light, mode, applied seq and lag; the Verify
//! button in its title row.

use super::style;
use crate::app::{App, Message};
use crate::nodes::{Activity, Node, MISSED_BEATS};
use iced::widget::{button, column, row, space, table, text, tooltip};
use iced::{Center, Element, Fill, Font};

pub fn view(app: &App) -> Element<'_, Message> {
    let now = app.nodes.now;
    let nodes = app.nodes.ordered();
    let title = row![
        style::title("Nodes"),
        text(format!(
            "{} of {} alive",
            app.nodes.alive_count(),
            app.nodes.len()
        ))
        .size(13)
        .style(text::secondary),
    ]
    .spacing(10)
    .align_y(Center);
    let body: Element<'_, Message> = if nodes.is_empty() {
        text(format!(
            "No heartbeat yet on {}.hb.*. Start a master (ddb-master) and slaves (ddb-slave), or list nodes with --node.",
            app.prefix()
        ))
        .size(13)
        .style(text::secondary)
        .into()
    } else {
        let header = |label: &'static str| text(label).size(13).font(style::BOLD);
        let columns = [
            table::column(header(""), move |n: &Node| -> Element<'_, Message> {
                style::with_help(
                    style::dot(n.is_alive(now)),
                    if n.is_alive(now) {
                        "Heartbeats arriving"
                    } else {
                        "No heartbeat within 3 intervals"
                    },
                    tooltip::Position::Right,
                )
            }),
            table::column(header("Node"), |n: &Node| {
                text(n.name.clone()).size(14).font(style::BOLD)
            }),
            table::column(header("Mode"), move |n: &Node| {
                let label = n.mode_label();
                let t = text(label).size(14);
                if !n.is_alive(now) {
                    t.style(text::secondary)
                } else if label == "failover" {
                    t.style(text::warning)
                } else {
                    t
                }
            }),
            table::column(header("Applied"), |n: &Node| {
                text(
                    n.last
                        .as_ref()
                        .map_or("–".to_owned(), |h| h.applied_seq.to_string()),
                )
                .size(14)
                .font(Font::MONOSPACE)
            })
            .align_x(iced::Right),
            table::column(header("Lag"), |n: &Node| {
                let lag = n.last.as_ref().map(|h| h.lag);
                let t = text(lag.map_or("–".to_owned(), |l| l.to_string()))
                    .size(14)
                    .font(Font::MONOSPACE);
                if lag.unwrap_or(0) > 0 {
                    t.style(text::warning)
                } else {
                    t
                }
            })
            .align_x(iced::Right),
            table::column(header("State"), move |n: &Node| {
                let activity = n.activity();
                let t = text(activity.to_string()).size(13);
                match activity {
                    _ if !n.is_alive(now) => t.style(text::secondary),
                    Activity::Restoring { .. } => t.style(text::primary),
                    Activity::CatchingUp { .. } => t.style(text::warning),
                    _ => t.style(text::secondary),
                }
            }),
            table::column(header("Heard"), move |n: &Node| {
                text(n.seen_label(now)).size(13).style(text::secondary)
            })
            .width(Fill),
        ];
        let mut body = column![table(columns, nodes.clone())
            .padding_x(6)
            .padding_y(5)
            .width(Fill)]
        .spacing(6);
        for node in &nodes {
            if let Some(hb) = &node.last {
                for broken in &hb.broken {
                    body = body.push(
                        text(format!(
                            "{}: database {} stopped replicating at seq {}: {}",
                            node.name, broken.db, broken.seq, broken.error
                        ))
                        .size(13)
                        .style(text::danger),
                    );
                }
            }
        }
        body.into()
    };
    let help = format!(
        "Every node publishes a heartbeat on {}.hb.<name> each interval.\nGreen: one arrived within {MISSED_BEATS} intervals; red: none did.\nApplied: the log seq the node has applied; lag: entries behind the log.\nState: catching up (applying log entries) or restoring a database from a snapshot (a new node, or one behind a trimmed log).",
        app.prefix()
    );
    let verify = style::with_help(
        button(text("Verify").size(13))
            .padding([4, 12])
            .on_press_maybe(app.can_verify().then_some(Message::Verify))
            .style(button::secondary),
        "CHECKSUM of every table on every live node, side by side in the result area (like `ddb verify`).\nEvery database the nodes report; mismatches in red. Meaningful on a quiet cluster.",
        tooltip::Position::Bottom,
    );
    style::card(
        column![
            row![
                style::with_help(title, help, tooltip::Position::Bottom),
                space::horizontal(),
                verify
            ]
            .align_y(Center),
            body
        ]
        .spacing(10),
    )
    .width(Fill)
    .into()
}

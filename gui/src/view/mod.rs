//! Layout: a header with the NATS link, the nodes and history on the left, the form and the
//! result on the right. Each panel's widgets are in their own file; styles are in `style`.

mod form;
mod history;
mod nodes;
mod results;
#[cfg(test)]
pub(crate) use results::error_texts;
pub mod style;
mod tx;

use crate::app::{App, Message};
use crate::connection::Link;
use iced::widget::{column, container, row, rule, space, text};
use iced::{Center, Element, Fill, Font};

/// Ids of the widgets tests and scripts address.
pub mod ids {
    use crate::form::Field;
    use iced::widget::Id;

    pub fn field(field: Field) -> Id {
        Id::new(name(field))
    }

    /// The input of `field` in op `index` of a TRANSACTION: `op1-field-table`.
    pub fn op_field(index: usize, field: Field) -> Id {
        Id::from(format!("op{index}-{}", name(field)))
    }

    /// A button of op `index` of a TRANSACTION: `up`, `down` or `remove` (`op1-down`).
    pub fn op_button(index: usize, button: &str) -> Id {
        Id::from(format!("op{index}-{button}"))
    }

    fn name(field: Field) -> &'static str {
        match field {
            Field::Db => "field-db",
            Field::Table => "field-table",
            Field::Columns => "field-columns",
            Field::NewColumns => "field-new-columns",
            Field::PrimaryKey => "field-primary-key",
            Field::Index => "field-index",
            Field::IndexColumns => "field-index-columns",
            Field::Unique => "field-unique",
            Field::Data => "field-data",
            Field::Condition => "field-condition",
            Field::Expect => "field-expect",
            Field::Ops => "field-ops",
            Field::SearchColumns => "field-search-columns",
            Field::OrderBy => "field-order-by",
            Field::Limit => "field-limit",
            Field::After => "field-after",
            Field::MinSeq => "field-min-seq",
            Field::OpId => "field-op-id",
        }
    }
}

pub fn view(app: &App) -> Element<'_, Message> {
    let sidebar = column![nodes::view(app), history::view(app)]
        .spacing(12)
        .width(430)
        .height(Fill);
    let main = column![form::view(app), results::view(app)]
        .spacing(12)
        .width(Fill)
        .height(Fill);
    column![
        header(app),
        rule::horizontal(1),
        row![sidebar, main].spacing(12).padding(12).height(Fill),
    ]
    .into()
}

fn header(app: &App) -> Element<'_, Message> {
    let (state, ok) = match app.link {
        Link::Connected => ("connected", true),
        Link::Connecting => ("connecting…", false),
        Link::Disconnected => ("disconnected", false),
    };
    let mut status = row![
        style::dot(ok),
        text(format!("NATS {state}")).size(14),
        text(app.settings.servers()).size(14).font(Font::MONOSPACE),
        text(format!("prefix {}", app.settings.prefix))
            .size(14)
            .style(text::secondary),
    ]
    .spacing(8)
    .align_y(Center);
    if let Some(e) = &app.link_error {
        status = status.push(text(e.clone()).size(14).style(text::danger));
    }
    if app.steps_left() > 0 {
        status = status.push(
            text(format!("script: {} steps left", app.steps_left()))
                .size(14)
                .style(text::secondary),
        );
    }
    container(
        row![
            text("ddb").size(22).font(style::BOLD),
            text("replicated SQL over NATS")
                .size(14)
                .style(text::secondary),
            space::horizontal(),
            status,
        ]
        .spacing(12)
        .align_y(Center),
    )
    .padding([8, 14])
    .width(Fill)
    .into()
}

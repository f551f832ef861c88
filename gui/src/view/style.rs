//! Colours and small shared widgets.

use iced::widget::{container, text, tooltip, Container};
use iced::{border, font, Color, Element, Font, Theme};

pub const BOLD: Font = Font {
    weight: font::Weight::Bold,
    ..Font::DEFAULT
};

pub const GREEN: Color = Color::from_rgb(0.13, 0.65, 0.30);
pub const RED: Color = Color::from_rgb(0.86, 0.20, 0.18);

/// A status light: green or red.
pub fn dot<'a, M: 'a>(ok: bool) -> Element<'a, M> {
    let color = if ok { GREEN } else { RED };
    container(text(""))
        .width(12)
        .height(12)
        .style(move |_: &Theme| container::Style {
            background: Some(color.into()),
            border: border::rounded(6),
            ..container::Style::default()
        })
        .into()
}

/// A titled card around a panel.
pub fn card<'a, M: 'a>(content: impl Into<Element<'a, M>>) -> Container<'a, M> {
    container(content)
        .padding(12)
        .style(container::bordered_box)
}

/// A panel title.
pub fn title<'a>(label: &'a str) -> iced::widget::Text<'a> {
    text(label).size(16).font(BOLD)
}

/// Help on hover, shown in a box.
pub fn with_help<'a, M: 'a>(
    content: impl Into<Element<'a, M>>,
    help: impl text::IntoFragment<'a>,
    position: tooltip::Position,
) -> Element<'a, M> {
    tooltip(
        content,
        container(text(help).size(13))
            .padding(8)
            .max_width(460)
            .style(container::rounded_box),
        position,
    )
    .into()
}

/// The style of an error text (red).
pub fn error_text(theme: &Theme) -> text::Style {
    text::danger(theme)
}

/// A tinted box for an error or a success line.
pub fn tinted(color: Color) -> impl Fn(&Theme) -> container::Style {
    move |_| container::Style {
        background: Some(Color { a: 0.08, ..color }.into()),
        border: border::rounded(4).color(Color { a: 0.5, ..color }).width(1),
        ..container::Style::default()
    }
}

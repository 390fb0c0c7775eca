//! Charts as SVG text, drawn with plotters. SVG leaves text to the viewer, so no system fonts
//! are needed and the page opens anywhere.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::timeline::{self, Event, Recording, State};

/// Series colours, chosen to stay apart for colour-blind readers.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];

const FONT: &str = "sans-serif";

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// A line per series over a shared x axis (one series per entry: name and points).
pub fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_range: Option<(f64, f64)>,
) -> Result<String> {
    lines_and_marks(title, x_desc, y_desc, series, &[], y_range, false)
}

/// [`lines`], plus a series of marks (circles) per entry of `marks`, the `i`-th in the colour of
/// the `i`-th line: measured figures beside the computed ones. The legend goes upper right
/// (for curves that fall to the right) or lower right.
pub fn lines_and_marks(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    marks: &[(String, Vec<(f64, f64)>)],
    y_range: Option<(f64, f64)>,
    legend_upper: bool,
) -> Result<String> {
    let pts = series.iter().chain(marks).flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (0f64, 0f64, 0f64);
    for (x, y) in pts {
        x_max = x_max.max(*x);
        y_max = y_max.max(*y);
        y_min = y_min.min(*y);
    }
    let (y_min, y_max) = y_range.unwrap_or((y_min, if y_max > 0.0 { y_max * 1.05 } else { 1.0 }));
    let x_max = if x_max > 0.0 { x_max * 1.02 } else { 1.0 };
    svg((900, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0f64..x_max, y_min..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        for (i, (name, points)) in marks.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new(*p, 6, colour.stroke_width(2))),
                )
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(if !legend_upper {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// The empirical distribution function of `values` as (value, fraction at or below) steps.
pub fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mut out = Vec::with_capacity(v.len() * 2 + 1);
    out.push((0.0, 0.0));
    for (i, x) in v.iter().enumerate() {
        out.push((*x, i as f64 / n));
        out.push((*x, (i + 1) as f64 / n));
    }
    out
}

/// Horizontal bars, one per (label, value), top to bottom in the given order.
pub fn bars(title: &str, x_desc: &str, items: &[(String, f64)]) -> Result<String> {
    let n = items.len().max(1) as i32;
    let x_max = items.iter().map(|(_, v)| *v).fold(0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.1 } else { 1.0 };
    let label_width = items.iter().map(|(l, _)| l.len()).max().unwrap_or(4) as u32 * 8 + 20;
    let height = 90 + 30 * n as u32;
    let labels: Vec<String> = items.iter().map(|(l, _)| l.clone()).collect();
    svg((900, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_width.min(420))
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(x_desc)
            .y_labels(n as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels
                    .get((n - 1 - *i) as usize)
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i as i32;
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row)),
                        (*v, SegmentValue::Exact(row + 1)),
                    ],
                    PALETTE[0].filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(err)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i as i32;
                Text::new(
                    format_value(*v),
                    (*v, SegmentValue::CenterOf(row)),
                    (FONT, 13).into_font().color(&BLACK),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 {
        format!(" {v:.0}")
    } else {
        format!(" {v:.2}")
    }
}

/// Points (x, y) without lines, one colour.
pub fn scatter(title: &str, x_desc: &str, y_desc: &str, points: &[(f64, f64)]) -> Result<String> {
    let x_max = points.iter().map(|p| p.0).fold(1f64, f64::max) * 1.02;
    let y_max = points.iter().map(|p| p.1).fold(1f64, f64::max) * 1.1;
    svg((900, 380), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 2, PALETTE[0].mix(0.7).filled())),
            )
            .map_err(err)?;
        Ok(())
    })
}

fn rgb(state: State) -> RGBColor {
    let (r, g, b) = state.rgb();
    RGBColor(r, g, b)
}

/// The operator's ticks: teal when the utility succeeded, orange when it failed.
const OPERATOR_OK: RGBColor = RGBColor(0, 140, 150);
const OPERATOR_FAILED: RGBColor = RGBColor(215, 110, 0);
/// Operator actions listed under the legend, at most; the rest are counted.
const OPERATOR_LISTED_MAX: usize = 16;
const OPERATOR_PER_LINE: usize = 4;

/// One operator action on the timeline: its number (as marked on the chart), time, command and
/// whether it succeeded.
struct OperatorMark<'a> {
    number: usize,
    at_ms: u64,
    command: &'a str,
    ok: bool,
}

fn operator_marks(rec: &Recording) -> Vec<OperatorMark<'_>> {
    rec.events
        .iter()
        .filter_map(|e| match e {
            Event::Operator {
                at_ms, command, ok, ..
            } => Some((*at_ms, command.as_str(), *ok)),
            _ => None,
        })
        .enumerate()
        .map(|(i, (at_ms, command, ok))| OperatorMark {
            number: i + 1,
            at_ms,
            command,
            ok,
        })
        .collect()
}

/// One seed's state timeline: a row per instance (grouped by content), coloured by its state;
/// host crashes (red) and restarts (green) as ticks on the rows of that host's instances;
/// prober catalog changes as black triangles, finished promotions as stars; and, on an
/// `operator` row of its own above them, the operator's actions as numbered ticks, listed by
/// number under the legend.
pub fn timeline(rec: &Recording) -> Result<String> {
    let mut rows: Vec<&timeline::Instance> = rec.instances.iter().collect();
    rows.sort_by_key(|i| (i.content, i.dbid));
    let n = rows.len().max(1) as i32;
    let operator = operator_marks(rec);
    // The operator's row sits above the instances' (row `n`), only if the operator acted.
    let total = n + i32::from(!operator.is_empty());
    let row_of = |dbid: u16| -> Option<i32> {
        rows.iter()
            .position(|i| i.dbid == dbid)
            .map(|p| n - 1 - p as i32)
    };
    let spans = timeline::spans(rec);
    let x_max = rec.end_ms as f64 / 1000.0;
    let listed = operator.len().min(OPERATOR_LISTED_MAX);
    let legend_height = 110 + 22 * listed.div_ceil(OPERATOR_PER_LINE) as u32;
    let height = 120 + 26 * (total as u32).max(4) + legend_height;
    let labels: Vec<String> = rows
        .iter()
        .map(|i| format!("seg{} dbid {} {}", i.content, i.dbid, i.host))
        .collect();
    svg((1300, height), |root| {
        let (upper, lower) = root.split_vertically(height - legend_height);
        let mut chart = ChartBuilder::on(&upper)
            .caption(
                format!("Seed {}: instance states over simulated time", rec.seed),
                (FONT, 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..x_max.max(1.0), (0..total).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("simulated seconds since the run began")
            .y_labels(total as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i == n => "operator".to_string(),
                SegmentValue::CenterOf(i) => labels
                    .get((n - 1 - *i) as usize)
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(spans.iter().filter_map(|s| {
                let row = row_of(s.dbid)?;
                let mut r = Rectangle::new(
                    [
                        (s.from_ms as f64 / 1000.0, SegmentValue::Exact(row)),
                        (s.to_ms as f64 / 1000.0, SegmentValue::Exact(row + 1)),
                    ],
                    rgb(s.state).filled(),
                );
                // A wider gap between contents than between a content's instances.
                let last_of_content = rows
                    .get((n - 1 - row) as usize + 1)
                    .is_none_or(|next| next.content != rows[(n - 1 - row) as usize].content);
                r.set_margin(2, if last_of_content { 6 } else { 1 }, 0, 0);
                Some(r)
            }))
            .map_err(err)?;
        draw_marks(&mut chart, event_marks(rec, &rows, &row_of, n))?;
        chart
            .draw_series(operator.iter().map(|m| {
                let x = m.at_ms as f64 / 1000.0;
                let colour = if m.ok { OPERATOR_OK } else { OPERATOR_FAILED };
                EmptyElement::at((x, SegmentValue::Exact(n)))
                    + PathElement::new(vec![(0, 0), (0, -20)], colour.stroke_width(3))
                    + Text::new(m.number.to_string(), (4, -18), (FONT, 12).into_font())
            }))
            .map_err(err)?;
        legend(&lower)?;
        operator_legend(&lower, &operator)
    })
}

/// The timeline's plot: seconds across, instance rows (and the operator's) up.
type TimelinePlot<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordi32>>>;

/// Draws the events' marks, each event's as one series.
fn draw_marks(chart: &mut TimelinePlot<'_, '_>, marks: Vec<Marks>) -> Result<()> {
    for marks in marks {
        match marks {
            Marks::Ticks {
                x,
                rows,
                colour,
                width,
            } => chart
                .draw_series(rows.into_iter().map(|row| {
                    PathElement::new(
                        vec![
                            (x, SegmentValue::Exact(row)),
                            (x, SegmentValue::Exact(row + 1)),
                        ],
                        colour.stroke_width(width),
                    )
                }))
                .map_err(err)?,
            Marks::CatalogChange { x, row } => chart
                .draw_series(std::iter::once(TriangleMarker::new(
                    (x, SegmentValue::CenterOf(row)),
                    5,
                    BLACK.filled(),
                )))
                .map_err(err)?,
            Marks::Promoted { x, row } => chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x, SegmentValue::CenterOf(row)))
                        + Circle::new((0, 0), 7, WHITE.filled())
                        + Circle::new((0, 0), 7, BLACK.stroke_width(2))
                        + Text::new("P", (-4, -6), (FONT, 12).into_font()),
                ))
                .map_err(err)?,
        };
    }
    Ok(())
}

/// What one recorded event draws on the timeline, in plot coordinates (seconds, row).
enum Marks {
    /// Vertical strokes across rows: host crashes and restarts, instances going down or up,
    /// faults.
    Ticks {
        x: f64,
        rows: Vec<i32>,
        colour: RGBColor,
        width: u32,
    },
    /// The prober's catalog change, a triangle on the instance's row.
    CatalogChange { x: f64, row: i32 },
    /// A finished promotion, a circled P on the instance's row.
    Promoted { x: f64, row: i32 },
}

/// The marks of each event, in the order recorded (each event's marks drawn as one series).
fn event_marks(
    rec: &Recording,
    rows: &[&timeline::Instance],
    row_of: &dyn Fn(u16) -> Option<i32>,
    n: i32,
) -> Vec<Marks> {
    const DOWN: RGBColor = RGBColor(180, 0, 0);
    const UP: RGBColor = RGBColor(0, 120, 0);
    let secs = |ms: u64| ms as f64 / 1000.0;
    let mut out = Vec::new();
    for e in &rec.events {
        match e {
            Event::HostCrash { at_ms, host } | Event::HostRestart { at_ms, host } => {
                out.push(Marks::Ticks {
                    x: secs(*at_ms),
                    rows: rows
                        .iter()
                        .filter(|i| &i.host == host)
                        .filter_map(|i| row_of(i.dbid))
                        .collect(),
                    colour: if matches!(e, Event::HostCrash { .. }) {
                        DOWN
                    } else {
                        UP
                    },
                    width: 3,
                })
            }
            Event::CatalogChange(c) => {
                if let Some(row) = row_of(c.dbid) {
                    out.push(Marks::CatalogChange {
                        x: secs(c.at_ms),
                        row,
                    });
                }
            }
            Event::Promoted { at_ms, dbid, .. } => {
                if let Some(row) = row_of(*dbid) {
                    out.push(Marks::Promoted {
                        x: secs(*at_ms),
                        row,
                    });
                }
            }
            Event::InstanceDown { at_ms, dbid } | Event::InstanceUp { at_ms, dbid } => {
                if let Some(row) = row_of(*dbid) {
                    out.push(Marks::Ticks {
                        x: secs(*at_ms),
                        rows: vec![row],
                        colour: if matches!(e, Event::InstanceDown { .. }) {
                            DOWN
                        } else {
                            UP
                        },
                        width: 3,
                    });
                }
            }
            Event::Fault { at_ms, dbids, .. } => out.push(Marks::Ticks {
                x: secs(*at_ms),
                rows: if dbids.is_empty() {
                    (0..n).collect()
                } else {
                    dbids.iter().filter_map(|d| row_of(*d)).collect()
                },
                colour: RGBColor(120, 0, 160),
                width: 2,
            }),
            Event::Operator { .. } | Event::Txn { .. } => {}
        }
    }
    out
}

/// Under the legend: the operator's actions by number, time and command, four to a line.
fn operator_legend(area: &DrawingArea<SVGBackend, Shift>, marks: &[OperatorMark]) -> Result<()> {
    let style = (FONT, 14).into_font();
    for (i, m) in marks.iter().take(OPERATOR_LISTED_MAX).enumerate() {
        let x = 20 + 310 * (i % OPERATOR_PER_LINE) as i32;
        let y = 96 + 22 * (i / OPERATOR_PER_LINE) as i32;
        let colour = if m.ok { OPERATOR_OK } else { OPERATOR_FAILED };
        area.draw(&PathElement::new(
            vec![(x + 8, y), (x + 8, y + 16)],
            colour.stroke_width(3),
        ))
        .map_err(err)?;
        let failed = if m.ok { "" } else { ", failed" };
        let text = format!(
            "{} operator: {} at {:.1} s{failed}",
            m.number,
            m.command,
            m.at_ms as f64 / 1000.0
        );
        area.draw(&Text::new(text, (x + 16, y + 1), style.clone()))
            .map_err(err)?;
    }
    if marks.len() > OPERATOR_LISTED_MAX {
        let lines = OPERATOR_LISTED_MAX.div_ceil(OPERATOR_PER_LINE) as i32;
        let more = format!(
            "and {} more operator actions (the run's JSON lists them all)",
            marks.len() - OPERATOR_LISTED_MAX
        );
        area.draw(&Text::new(more, (20, 96 + 22 * lines), style))
            .map_err(err)?;
    }
    Ok(())
}

fn legend(area: &DrawingArea<SVGBackend, Shift>) -> Result<()> {
    let style = (FONT, 14).into_font();
    let mut x = 20;
    for (i, state) in State::ALL.iter().enumerate() {
        if i == 3 {
            x = 20;
        }
        let y = if i < 3 { 10 } else { 36 };
        area.draw(&Rectangle::new(
            [(x, y), (x + 18, y + 16)],
            rgb(*state).filled(),
        ))
        .map_err(err)?;
        area.draw(&Text::new(state.label(), (x + 24, y + 1), style.clone()))
            .map_err(err)?;
        x += 400;
    }
    let y = 66;
    let marks: [(&str, RGBColor); 3] = [
        ("host or process down", RGBColor(180, 0, 0)),
        ("back up", RGBColor(0, 120, 0)),
        ("other fault", RGBColor(120, 0, 160)),
    ];
    let mut x = 20;
    for (label, colour) in marks {
        area.draw(&PathElement::new(
            vec![(x + 8, y), (x + 8, y + 18)],
            colour.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(label, (x + 24, y + 2), style.clone()))
            .map_err(err)?;
        x += 200;
    }
    area.draw(&TriangleMarker::new((x + 8, y + 9), 5, BLACK.filled()))
        .map_err(err)?;
    area.draw(&Text::new(
        "prober recorded a catalog change",
        (x + 24, y + 2),
        style.clone(),
    ))
    .map_err(err)?;
    x += 330;
    area.draw(&Circle::new((x + 8, y + 9), 7, BLACK.stroke_width(2)))
        .map_err(err)?;
    area.draw(&Text::new("P", (x + 4, y + 3), (FONT, 12).into_font()))
        .map_err(err)?;
    area.draw(&Text::new(
        "mirror finished promotion",
        (x + 24, y + 2),
        style,
    ))
    .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_titles() {
        let s = lines(
            "Failover",
            "s",
            "fraction",
            &[("detection".into(), cdf(&[1.0, 2.0, 3.0]))],
            Some((0.0, 1.0)),
        )
        .unwrap();
        assert!(s.starts_with("<svg") && s.contains("Failover") && s.contains("detection"));
        let b = bars("Faults", "count", &[("host-crash".into(), 3.0)]).unwrap();
        assert!(b.contains("host-crash"));
        let t = timeline(&crate::timeline::tests::recording()).unwrap();
        assert!(t.contains("seg0 dbid 2 sdw1") && t.contains("<rect"));
        // The operator's row, and its two actions listed by number, the failed one said so.
        let texts: Vec<&str> = t.lines().collect();
        assert!(texts.contains(&"operator"), "an operator row label");
        assert!(texts.contains(&"1 operator: recoverseg at 9.5 s"));
        assert!(texts.contains(&"2 operator: recoverseg -r at 12.2 s, failed"));
    }

    #[test]
    fn cdf_steps_reach_one() {
        let c = cdf(&[2.0, 1.0]);
        assert_eq!(
            c,
            vec![(0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (2.0, 0.5), (2.0, 1.0)]
        );
    }
}

//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network) with the
//! per-repository table, yield per strategy and per repository, the distributions of F2P
//! counts and lines changed per instance, and where time went per repository.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::context::{Error, io};

use super::record::{CampaignRecord, Status};

/// Writes the report of the campaign output `out` (`<out>/report.html`).
pub fn write(record: &CampaignRecord, out: &Path) -> Result<(), Error> {
    let stats = crate::stats::collect(&[out.to_path_buf()]);
    let path = out.join("report.html");
    crate::files::write_atomic(&path, render(record, &stats).as_bytes()).map_err(io(&path))
}

/// Text made safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart: one row per (label, value, note), scaled to the largest value;
/// whole values are shown without decimals.
fn bars(title: &str, rows: &[(String, f64, String)]) -> String {
    let mut svg = String::new();
    let height = 22 * rows.len().max(1) + 10;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1e-9);
    let _ = write!(
        svg,
        "<h2>{}</h2>\n<svg role=\"img\" aria-label=\"{}\" width=\"760\" height=\"{height}\">",
        escape(title),
        escape(title)
    );
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let y = 5 + 22 * i;
        let width = (value / max * 380.0).round();
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"label\">{}</text><rect x=\"250\" y=\"{y}\" width=\"{width}\" height=\"16\" class=\"bar\"/>\
             <text x=\"{}\" y=\"{}\" class=\"value\">{} {}</text>",
            y + 12,
            escape(&truncate(label, 34)),
            255.0 + width,
            y + 12,
            if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.1}") },
            escape(note)
        );
    }
    if rows.is_empty() {
        svg.push_str("<text x=\"0\" y=\"16\" class=\"label\">nothing yet</text>");
    }
    svg.push_str("</svg>\n");
    svg
}

/// Stacked bars of seconds per stage, one row per repository.
fn time_bars(record: &CampaignRecord) -> String {
    const STAGES: [(&str, &str); 5] =
        [("env", "#7aa6c2"), ("gen", "#9bc27a"), ("validate", "#c2a27a"), ("gather", "#b07ac2"), ("issues", "#c27a8c")];
    let rows: Vec<(String, BTreeMap<String, f64>)> = record
        .repos
        .iter()
        .map(|r| (r.repo_name.clone().unwrap_or_else(|| r.source.clone()), r.seconds.clone()))
        .collect();
    let total = |s: &BTreeMap<String, f64>| s.values().fold(0.0, |a, b| a + b);
    let max = rows.iter().map(|(_, s)| total(s)).fold(0.0_f64, f64::max).max(1e-9);
    let height = 22 * rows.len().max(1) + 30;
    let mut svg = format!(
        "<h2>Where time went</h2>\n<svg role=\"img\" aria-label=\"Where time went\" width=\"760\" height=\"{height}\">"
    );
    for (i, (label, seconds)) in rows.iter().enumerate() {
        let y = 5 + 22 * i;
        let _ = write!(svg, "<text x=\"0\" y=\"{}\" class=\"label\">{}</text>", y + 12, escape(&truncate(label, 34)));
        let mut x = 250.0;
        for (stage, colour) in STAGES {
            let s = seconds.get(stage).copied().unwrap_or(0.0);
            let width = s / max * 380.0;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{width:.1}\" height=\"16\" fill=\"{colour}\"><title>{stage}: {s:.0} s</title></rect>"
            );
            x += width;
        }
        let _ =
            write!(svg, "<text x=\"{:.1}\" y=\"{}\" class=\"value\">{:.0} s</text>", x + 5.0, y + 12, total(seconds));
    }
    let legend_y = height - 8;
    for (i, (stage, colour)) in STAGES.iter().enumerate() {
        let x = 250 + i * 90;
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{legend_y}\" class=\"value\">{stage}</text>",
            legend_y - 9,
            x + 14
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn truncate(text: &str, at: usize) -> String {
    if text.chars().count() <= at { text.to_string() } else { text.chars().take(at - 1).collect::<String>() + "…" }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// The page.
pub fn render(record: &CampaignRecord, stats: &crate::stats::Stats) -> String {
    let t = &record.totals;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bugsmith campaign {name}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child,th:first-child,td.text{{text-align:left}}\
         td.reason{{max-width:32em;font-size:12px;overflow-wrap:anywhere}}tr.failed{{background:#fbe3e3}}tr.partial{{background:#fdf5dc}}.bar{{fill:#5b8db8}}\
         .label,.value{{font-size:12px;dominant-baseline:middle}}</style></head><body>\n\
         <h1>Campaign {name}</h1>\n<p id=\"totals\">{repos} sources: {ok} ok, {partial} partial, {failed} failed; \
         {candidates} candidates, {valid} valid, {instances} instances; {wall:.0} s wall time{shards}. Written {at}.</p>\n",
        name = escape(&record.name),
        repos = t.repos,
        ok = t.ok,
        partial = t.partial,
        failed = t.failed,
        candidates = t.candidates,
        valid = t.valid,
        instances = t.instances,
        wall = record.wall_seconds,
        shards =
            if record.shards.is_empty() { String::new() } else { format!(" (shards {})", record.shards.join(", ")) },
        at = escape(&record.created_at),
    );
    html.push_str(
        "<h2>Repositories</h2>\n<table id=\"repos\"><thead><tr><th>source</th><th>repo_name</th><th>status</th><th>stage</th>\
         <th>reason</th><th>tests</th><th>candidates</th><th>valid</th><th>instances</th><th>env s</th><th>gen s</th>\
         <th>validate s</th></tr></thead><tbody>\n",
    );
    for repo in &record.repos {
        let status = match repo.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Partial => "partial",
        };
        let seconds = |stage: &str| repo.seconds.get(stage).map_or(String::new(), |s| format!("{s:.0}"));
        let reason = repo.reason.as_deref().unwrap_or("");
        let reason = match &repo.log {
            Some(log) => format!("{} (log: {})", escape(&truncate(reason, 200)), escape(log)),
            None => escape(&truncate(reason, 200)),
        };
        let _ = writeln!(
            html,
            "<tr class=\"{status}\"><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{status}</td><td class=\"text\">{}</td>\
             <td class=\"text reason\">{reason}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&repo.source),
            escape(repo.repo_name.as_deref().unwrap_or("")),
            escape(repo.stage.as_deref().unwrap_or("")),
            repo.tests,
            repo.candidates,
            repo.valid,
            repo.instances,
            seconds("env"),
            seconds("gen"),
            seconds("validate"),
        );
    }
    html.push_str("</tbody></table>\n");
    let strategies: Vec<(String, f64, String)> = t
        .per_strategy
        .iter()
        .map(|(s, y)| (s.clone(), percent(y.valid, y.candidates), format!("% ({} of {})", y.valid, y.candidates)))
        .collect();
    html.push_str(&bars("Yield per strategy (valid / validated)", &strategies));
    html.push_str(
        "<table id=\"strategies\"><thead><tr><th>strategy</th><th>candidates</th><th>valid</th><th>yield</th>\
         <th>mean F2P</th><th>mean lines changed</th><th>test s per valid</th></tr></thead><tbody>\n",
    );
    for (strategy, s) in &stats.strategies {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
            escape(strategy),
            s.candidates,
            s.valid,
            s.yield_rate * 100.0,
            s.mean_f2p,
            s.mean_lines_changed,
            s.test_seconds_per_valid
        );
    }
    html.push_str("</tbody></table>\n");
    let repos: Vec<(String, f64, String)> = record
        .repos
        .iter()
        .map(|r| {
            (
                r.repo_name.clone().unwrap_or_else(|| r.source.clone()),
                percent(r.valid, r.validated),
                format!("% ({} of {})", r.valid, r.validated),
            )
        })
        .collect();
    html.push_str(&bars("Yield per repository (valid / validated)", &repos));
    let histogram = |pick: fn(&super::record::RepoRecord) -> &BTreeMap<usize, usize>| {
        let mut all: BTreeMap<usize, usize> = BTreeMap::new();
        for repo in &record.repos {
            for (k, n) in pick(repo) {
                *all.entry(*k).or_default() += n;
            }
        }
        all.into_iter().map(|(k, n)| (k.to_string(), n as f64, "instances".to_string())).collect::<Vec<_>>()
    };
    html.push_str(&bars("Instances by F2P count", &histogram(|r| &r.f2p_counts)));
    html.push_str(&bars("Instances by lines changed", &histogram(|r| &r.lines_changed)));
    html.push_str(&time_bars(record));
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::super::record::RepoRecord;
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let mut record = CampaignRecord {
            name: "c<1>".into(),
            repos: vec![RepoRecord {
                source: "pypi:x".into(),
                status: Status::Failed,
                reason: Some("pip said <no>".into()),
                ..RepoRecord::default()
            }],
            ..CampaignRecord::default()
        };
        record.total();
        let page = render(&record, &crate::stats::Stats::default());
        assert!(page.contains("c&lt;1&gt;") && page.contains("pip said &lt;no&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
        assert!(page.contains("<tr class=\"failed\">"));
    }
}

//! The scanner panel as a store × brand × week grid, and the component's request rows built
//! from it at any forecast origin.

use std::collections::HashMap;

use trademl_model_demand_forecast::model::{HISTORY, HORIZON, Series};

use crate::scanner::{self, Panel};

/// One store × brand series on the week grid; NaN marks a week with no record.
#[derive(Debug, Clone)]
pub struct Track {
    /// Store number.
    pub store: u32,
    /// Brand number, 1-based.
    pub brand: u32,
    /// Units per week.
    pub units: Vec<f64>,
    /// Own shelf price per week.
    pub price: Vec<f64>,
    /// Deal flag per week.
    pub deal: Vec<f64>,
    /// Feature share per week.
    pub feature: Vec<f64>,
}

/// The panel on a grid of consecutive week numbers.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The first week number.
    pub first_week: u32,
    /// Weeks on the grid (last − first + 1).
    pub weeks: usize,
    /// Brands (price columns).
    pub products: usize,
    /// Every series, sorted by store and brand.
    pub tracks: Vec<Track>,
    /// Every brand's price per store and week index, from any row of that store-week.
    store_prices: HashMap<(u32, usize), Vec<f64>>,
    /// Every brand's deal flag and feature share per store and week index (0 for a brand with
    /// no row that week).
    store_promotions: HashMap<(u32, usize), (Vec<f64>, Vec<f64>)>,
}

impl Grid {
    /// Read a weekly panel and lay it out as the grid, saying what was read. With `until`, rows
    /// of later weeks are dropped as they are read, as if the file ended at that week.
    pub fn load(
        data: &std::path::Path,
        columns: &scanner::Columns,
        until: Option<u32>,
    ) -> anyhow::Result<(Panel, Grid)> {
        let mut panel = scanner::load(data, columns)?;
        if let Some(last) = until {
            panel.rows.retain(|r| r.week <= last);
            anyhow::ensure!(
                !panel.rows.is_empty(),
                "{}: no rows at or before week {last} (--until-week)",
                data.display()
            );
        }
        let grid = Grid::new(&panel);
        eprintln!(
            "{}: {} rows, {} store × brand series, weeks {}..={}",
            data.display(),
            panel.rows.len(),
            grid.tracks.len(),
            grid.first_week,
            grid.week(grid.weeks - 1)
        );
        Ok((panel, grid))
    }

    /// Lays the panel's rows on the week grid.
    pub fn new(panel: &Panel) -> Grid {
        let weeks = panel.weeks();
        let first_week = weeks[0];
        let n = (weeks[weeks.len() - 1] - first_week) as usize + 1;
        let mut tracks = Vec::new();
        let mut store_prices = HashMap::new();
        for ((store, brand), rows) in panel.series() {
            let mut t = Track {
                store,
                brand,
                units: vec![f64::NAN; n],
                price: vec![f64::NAN; n],
                deal: vec![f64::NAN; n],
                feature: vec![f64::NAN; n],
            };
            for r in rows {
                let w = (r.week - first_week) as usize;
                t.units[w] = r.units;
                t.price[w] = r.price();
                t.deal[w] = r.deal;
                t.feature[w] = r.feature;
                store_prices
                    .entry((store, w))
                    .or_insert_with(|| r.prices.clone());
            }
            tracks.push(t);
        }
        let mut store_promotions: HashMap<(u32, usize), (Vec<f64>, Vec<f64>)> = HashMap::new();
        for t in &tracks {
            for w in 0..n {
                if t.units[w].is_nan() {
                    continue;
                }
                let e = store_promotions
                    .entry((t.store, w))
                    .or_insert_with(|| (vec![0.0; panel.products], vec![0.0; panel.products]));
                e.0[t.brand as usize - 1] = t.deal[w];
                e.1[t.brand as usize - 1] = t.feature[w];
            }
        }
        Grid {
            first_week,
            weeks: n,
            products: panel.products,
            tracks,
            store_prices,
            store_promotions,
        }
    }

    /// The week number of a week index.
    pub fn week(&self, index: usize) -> u32 {
        self.first_week + index as u32
    }

    /// Every brand's shelf prices in the store in week index `w`: from a row of that store-week,
    /// or, when the store has none, the latest earlier week it has.
    fn prices_at(&self, store: u32, w: usize) -> Vec<f64> {
        (0..=w)
            .rev()
            .find_map(|v| self.store_prices.get(&(store, v)))
            .cloned()
            .unwrap_or_else(|| vec![f64::NAN; self.products])
    }

    /// Every brand's deal flags and feature shares in the store in week index `w` (none for a
    /// store-week with no row).
    fn promotions_at(&self, store: u32, w: usize) -> (Vec<f64>, Vec<f64>) {
        self.store_promotions
            .get(&(store, w))
            .cloned()
            .unwrap_or_else(|| (vec![0.0; self.products], vec![0.0; self.products]))
    }

    /// The request row of `track` at origin week index `origin`: the history up to it and the
    /// planned prices and promotions of the next HORIZON weeks (as recorded; a week with no row
    /// plans no deal and no feature ad, at the store's recorded prices). Returns None when the
    /// history has no observed week or a planned week lies beyond the grid.
    pub fn series(&self, track: &Track, origin: usize) -> Option<Series> {
        if origin + HORIZON >= self.weeks {
            return None;
        }
        let hist = |v: &[f64]| -> [f64; HISTORY] {
            std::array::from_fn(|i| {
                (origin + i + 1)
                    .checked_sub(HISTORY)
                    .map_or(f64::NAN, |w| v[w])
            })
        };
        let units = hist(&track.units);
        if !units.iter().any(|u| *u > 0.0) {
            return None;
        }
        let or_zero = |v: f64| if v.is_nan() { 0.0 } else { v };
        let planned_prices: [Vec<f64>; HORIZON] =
            std::array::from_fn(|h| self.prices_at(track.store, origin + h + 1));
        if planned_prices.iter().flatten().any(|p| p.is_nan()) {
            return None;
        }
        let (planned_deals, planned_features): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (1..=HORIZON)
            .map(|h| self.promotions_at(track.store, origin + h))
            .unzip();
        let (planned_deals, planned_features): ([Vec<f64>; HORIZON], [Vec<f64>; HORIZON]) = (
            planned_deals.try_into().expect("HORIZON weeks"),
            planned_features.try_into().expect("HORIZON weeks"),
        );
        Some(Series {
            store: f64::from(track.store),
            brand: track.brand as usize,
            units,
            price: hist(&track.price),
            deal: hist(&track.deal).map(or_zero),
            feature: hist(&track.feature).map(or_zero),
            planned_prices,
            planned_deals,
            planned_features,
        })
    }
}

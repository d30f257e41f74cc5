//! Reading an order-lines CSV into each customer's orders, in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which columns of the CSV hold what.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The customer identifier.
    pub user: String,
    /// The order's sequence number within the customer's orders (1 = first).
    pub order_number: String,
    /// The product identifier (an integer >= 1).
    pub product: String,
    /// The line's position in the cart (1 = added first).
    pub cart_position: String,
}

/// One customer's orders, oldest first; each order's distinct products in cart order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The customer id as written in the file.
    pub id: String,
    /// Orders, oldest first.
    pub orders: Vec<Vec<i64>>,
}

/// The customers of an order-lines file.
#[derive(Debug, Clone)]
pub struct OrderTable {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Data rows in the file.
    pub rows: usize,
    /// Distinct products.
    pub products: usize,
    /// Customers, by id (string order).
    pub users: Vec<User>,
}

impl OrderTable {
    /// Total orders.
    pub fn orders(&self) -> usize {
        self.users.iter().map(|u| u.orders.len()).sum()
    }
}

fn parse_number(text: &str, column: &str, line: usize, path: &Path) -> Result<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .with_context(|| {
            format!(
                "{} line {line}: column {column:?} = {text:?} is not a number",
                path.display()
            )
        })
}

/// Reads a CSV (gzip-compressed when the name ends in `.gz`) of one order line per row.
/// Orders are sequenced by their order number within each customer; lines within an order by
/// cart position. A product repeated within one order counts once.
pub fn load(path: &Path, columns: &Columns) -> Result<OrderTable> {
    let crate::files::Csv {
        sha256,
        mut reader,
        headers,
    } = crate::files::Csv::open(path)?;
    let index = |role: &str, name: &str| crate::files::column(path, &headers, role, name);
    let ui = index("user", &columns.user)?;
    let oi = index("order number", &columns.order_number)?;
    let pi = index("product", &columns.product)?;
    let ci = index("cart position", &columns.cart_position)?;

    // user -> order number -> (cart position, product)
    type Lines = Vec<(f64, i64)>;
    let mut by_user: BTreeMap<String, BTreeMap<i64, Lines>> = BTreeMap::new();
    let mut products = std::collections::BTreeSet::new();
    let mut rows = 0;
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{} line {line}", path.display()))?;
        rows += 1;
        let field = |j: usize| record.get(j).unwrap_or("");
        let user = field(ui).trim().to_string();
        if user.is_empty() {
            bail!(
                "{} line {line}: column {:?} is empty",
                path.display(),
                columns.user
            );
        }
        let order = parse_number(field(oi), &columns.order_number, line, path)?;
        let product = parse_number(field(pi), &columns.product, line, path)?;
        let cart = parse_number(field(ci), &columns.cart_position, line, path)?;
        if order.fract() != 0.0 || product.fract() != 0.0 || product < 1.0 {
            bail!(
                "{} line {line}: order number {order} and product id {product} must be whole \
                 numbers, the product id >= 1",
                path.display()
            );
        }
        products.insert(product as i64);
        by_user
            .entry(user)
            .or_default()
            .entry(order as i64)
            .or_default()
            .push((cart, product as i64));
    }
    if by_user.is_empty() {
        bail!("{}: no order lines", path.display());
    }
    let users = by_user
        .into_iter()
        .map(|(id, orders)| User {
            id,
            orders: orders
                .into_values()
                .map(|mut lines| {
                    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let mut order: Vec<i64> = Vec::with_capacity(lines.len());
                    for (_, p) in lines {
                        if !order.contains(&p) {
                            order.push(p);
                        }
                    }
                    order
                })
                .collect(),
        })
        .collect();
    Ok(OrderTable {
        path: path.to_path_buf(),
        sha256,
        rows,
        products: products.len(),
        users,
    })
}

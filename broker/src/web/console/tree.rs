//! The agency subtree an admin administers in one relying party: as a flat list in tree
//! order (the unit selects) and as a tree (the "Thay đổi đơn vị" picker).

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use fedhub_identifiers::AgencyCode;
use serde::Serialize;

use crate::admin::memberships::{subtree_pattern, Admin};
use crate::directory::agencies::Agency;
use crate::error::Result;
use crate::store::schema::agencies::dsl as a;
use crate::store::Db;

/// At most this many units are offered on one page.
pub(crate) const MAX_UNITS: i64 = 5000;

/// One unit of a select, indented by its depth in the subtree.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unit {
    pub code: String,
    pub name: String,
    pub depth: usize,
    /// Non-breaking spaces that show the depth inside an `<option>`.
    pub indent: String,
}

/// One unit of the tree picker.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Node {
    pub code: String,
    pub name: String,
    pub children: Vec<Node>,
    /// Shown expanded: it holds the chosen unit (or the tree is small at the top).
    pub open: bool,
    pub checked: bool,
}

/// The admin's subtrees in `rp_id`: the registered agencies in them, in tree order.
/// The federation operator is not limited to a subtree: every registered agency.
pub(crate) struct Subtree {
    agencies: BTreeMap<String, Agency>,
    children: BTreeMap<String, Vec<String>>,
    roots: Vec<String>,
    /// More agencies exist than were loaded.
    pub truncated: bool,
}

impl Subtree {
    pub(crate) fn of(c: &mut Db, admin: &Admin, rp_id: &str) -> Result<Subtree> {
        let mut query = a::agencies
            .select(Agency::as_select())
            .order(a::code.asc())
            .limit(MAX_UNITS + 1)
            .into_boxed();
        if !admin.is_operator() {
            let scopes = admin.scopes_in(rp_id);
            if scopes.is_empty() {
                return Ok(Subtree::from_agencies(Vec::new(), false));
            }
            // A scope inside another adds nothing.
            let outer: BTreeSet<String> = scopes
                .iter()
                .filter(|s| !scopes.iter().any(|o| o != *s && s.is_within(o)))
                .map(subtree_pattern)
                .collect();
            for pattern in outer {
                query = query.or_filter(a::code.like(pattern));
            }
        }
        let mut rows: Vec<Agency> = query.load(c)?;
        let truncated = rows.len() as i64 > MAX_UNITS;
        rows.truncate(MAX_UNITS as usize);
        Ok(Subtree::from_agencies(rows, truncated))
    }

    fn from_agencies(rows: Vec<Agency>, truncated: bool) -> Subtree {
        let agencies: BTreeMap<String, Agency> =
            rows.into_iter().map(|r| (r.code.clone(), r)).collect();
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut roots = Vec::new();
        for agency in agencies.values() {
            match agency
                .parent_code
                .as_ref()
                .filter(|p| agencies.contains_key(*p))
            {
                Some(parent) => children
                    .entry(parent.clone())
                    .or_default()
                    .push(agency.code.clone()),
                None => roots.push(agency.code.clone()),
            }
        }
        Subtree {
            agencies,
            children,
            roots,
            truncated,
        }
    }

    fn name(&self, code: &str, en: bool) -> String {
        self.agencies
            .get(code)
            .map(|ag| match (&ag.name_en, en) {
                (Some(n), true) => n.clone(),
                _ => ag.name_vi.clone(),
            })
            .unwrap_or_else(|| code.to_string())
    }

    /// The units in tree order (parents before their children), for a select.
    pub(crate) fn units(&self, en: bool) -> Vec<Unit> {
        let mut out = Vec::with_capacity(self.agencies.len());
        let mut stack: Vec<(String, usize)> =
            self.roots.iter().rev().map(|r| (r.clone(), 0)).collect();
        while let Some((code, depth)) = stack.pop() {
            if let Some(kids) = self.children.get(&code) {
                stack.extend(kids.iter().rev().map(|k| (k.clone(), depth + 1)));
            }
            out.push(Unit {
                name: self.name(&code, en),
                indent: "\u{a0}\u{a0}\u{a0}".repeat(depth),
                code,
                depth,
            });
        }
        out
    }

    /// The tree, with the path to `selected` expanded and `selected` checked.
    pub(crate) fn tree(&self, selected: Option<&str>, en: bool) -> Vec<Node> {
        let selected = selected.and_then(|s| AgencyCode::parse(s).ok());
        let few_roots = self.roots.len() <= 3;
        self.roots
            .iter()
            .map(|r| self.node(r, selected.as_ref(), few_roots, en))
            .collect()
    }

    fn node(&self, code: &str, selected: Option<&AgencyCode>, open: bool, en: bool) -> Node {
        let this = AgencyCode::parse(code).ok();
        let holds_selected = match (&this, selected) {
            (Some(this), Some(sel)) => sel != this && sel.is_within(this),
            _ => false,
        };
        let children = self
            .children
            .get(code)
            .map(|kids| {
                kids.iter()
                    .map(|k| self.node(k, selected, false, en))
                    .collect()
            })
            .unwrap_or_default();
        Node {
            code: code.to_string(),
            name: self.name(code, en),
            children,
            open: open || holds_selected,
            checked: selected.is_some_and(|s| s.as_str() == code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(code: &str, name: &str) -> Agency {
        let parsed = AgencyCode::parse(code).unwrap();
        Agency {
            code: code.into(),
            parent_code: parsed.parent().map(|p| p.as_str().to_string()),
            level: i32::from(parsed.level()),
            name_vi: name.into(),
            name_en: None,
            kind: "unit".into(),
            source: "local".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn tree_order_and_the_path_to_the_chosen_unit() {
        let t = Subtree::from_agencies(
            vec![
                agency("000.00.00.H49", "Quảng Ninh"),
                agency("000.00.01.H49", "Sở Tài chính"),
                agency("000.01.01.H49", "Phòng Ngân sách"),
                agency("000.00.02.H49", "Sở Y tế"),
            ],
            false,
        );
        let order: Vec<(String, usize)> = t
            .units(false)
            .into_iter()
            .map(|u| (u.code, u.depth))
            .collect();
        assert_eq!(
            order,
            [
                ("000.00.00.H49".to_string(), 0),
                ("000.00.01.H49".to_string(), 1),
                ("000.01.01.H49".to_string(), 2),
                ("000.00.02.H49".to_string(), 1),
            ]
        );
        let tree = t.tree(Some("000.01.01.H49"), false);
        assert_eq!(tree.len(), 1);
        let finance = &tree[0].children[0];
        assert!(finance.open && !finance.checked);
        assert!(finance.children[0].checked);
        assert!(!tree[0].children[1].open);
    }
}

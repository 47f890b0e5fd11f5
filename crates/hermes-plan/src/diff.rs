//! The diff: desired resources against observed ones.

use std::collections::{BTreeMap, BTreeSet};

use hermes_core::{Address, ObservedResource, Resource};

use crate::model::{Action, AttrDiff, Change, Desired, PLAN_FORMAT, Plan, Summary};

/// Plans the changes that turn `observed` into `desired`. Observed resources must already be
/// filtered to the desired scope (providers discover by ownership label).
pub fn plan(desired: &Desired, observed: &[ObservedResource]) -> Plan {
    let seen: BTreeMap<&Address, &ObservedResource> =
        observed.iter().map(|o| (&o.address, o)).collect();
    let wanted: BTreeMap<&Address, &Resource> =
        desired.resources.iter().map(|r| (&r.address, r)).collect();

    let mut changes: BTreeMap<Address, Change> = BTreeMap::new();
    let mut unchanged = 0;
    for resource in &desired.resources {
        match seen.get(&resource.address) {
            None => {
                changes.insert(
                    resource.address.clone(),
                    change(
                        resource,
                        None,
                        Action::Create,
                        "new in the stack".to_owned(),
                        Vec::new(),
                    ),
                );
            }
            Some(found) => match compare(resource, found) {
                Some((action, reason, diffs)) => {
                    changes.insert(
                        resource.address.clone(),
                        change(resource, Some(found), action, reason, diffs),
                    );
                }
                None => unchanged += 1,
            },
        }
    }
    for found in observed {
        if !wanted.contains_key(&found.address) {
            changes.insert(
                found.address.clone(),
                Change {
                    address: found.address.clone(),
                    action: Action::Delete,
                    reason: "no longer in the stack".to_owned(),
                    diffs: Vec::new(),
                    desired: None,
                    observed: Some(found.clone()),
                },
            );
        }
    }
    unchanged -= propagate_replacements(&desired.resources, &seen, &mut changes);

    let mut changes: Vec<Change> = changes.into_values().collect();
    changes.sort_by(|a, b| {
        let group = |c: &Change| !c.action.is_destructive();
        (group(a), a.address.kind.layer(), &a.address).cmp(&(
            group(b),
            b.address.kind.layer(),
            &b.address,
        ))
    });
    let summary = Summary::of(&changes, unchanged);
    Plan {
        format: PLAN_FORMAT,
        scope: desired.scope.clone(),
        stack_digest: desired.stack_digest.clone(),
        desired_digest: hermes_core::digest::of_json(&desired.resources),
        observed_digest: observed_digest(observed),
        changes,
        summary,
    }
}

/// Digest of observed resources, independent of the order providers listed them in.
pub(crate) fn observed_digest(observed: &[ObservedResource]) -> String {
    let mut sorted: Vec<&ObservedResource> = observed.iter().collect();
    sorted.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.id.cmp(&b.id)));
    hermes_core::digest::of_json(&sorted)
}

fn change(
    resource: &Resource,
    found: Option<&ObservedResource>,
    action: Action,
    reason: String,
    diffs: Vec<AttrDiff>,
) -> Change {
    Change {
        address: resource.address.clone(),
        action,
        reason,
        diffs,
        desired: Some(resource.clone()),
        observed: found.cloned(),
    }
}

/// Compares one resource; `None` when it is as wanted. Only attributes the provider reported
/// are compared.
fn compare(
    resource: &Resource,
    found: &ObservedResource,
) -> Option<(Action, String, Vec<AttrDiff>)> {
    let mut diffs = Vec::new();
    for (key, want) in &resource.attrs {
        if let Some(have) = found.attrs.get(key)
            && have != want
        {
            diffs.push(AttrDiff {
                key: key.clone(),
                before: Some(have.clone()),
                after: Some(want.clone()),
                forces_replacement: resource.replace_on_change.contains(key),
            });
        }
    }
    let fixed: Vec<&str> = diffs
        .iter()
        .filter(|d| d.forces_replacement)
        .map(|d| d.key.as_str())
        .collect();
    if !fixed.is_empty() {
        let reason = format!("{} cannot change in place", list(&fixed));
        return Some((Action::Replace, reason, diffs));
    }
    let drifted: Vec<String> = found
        .drift
        .iter()
        .map(|(k, why)| format!("{k} ({why})"))
        .collect();
    match (diffs.is_empty(), drifted.is_empty()) {
        (true, true) => None,
        (false, _) => {
            let keys: Vec<&str> = diffs.iter().map(|d| d.key.as_str()).collect();
            Some((Action::Update, format!("{} changed", list(&keys)), diffs))
        }
        (true, false) => Some((
            Action::Update,
            format!("drift: {}", drifted.join(", ")),
            diffs,
        )),
    }
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A replaced resource takes everything that depends on it (transitively) along: an agent on a
/// replaced host is recreated with it. Returns how many unchanged resources became replacements.
fn propagate_replacements(
    resources: &[Resource],
    seen: &BTreeMap<&Address, &ObservedResource>,
    changes: &mut BTreeMap<Address, Change>,
) -> usize {
    let mut replaced: BTreeSet<Address> = changes
        .values()
        .filter(|c| c.action == Action::Replace)
        .map(|c| c.address.clone())
        .collect();
    let mut newly_replaced = 0;
    loop {
        let mut grew = false;
        for r in resources {
            let Some(cause) = r.depends_on.iter().find(|d| replaced.contains(*d)) else {
                continue;
            };
            let Some(found) = seen.get(&r.address) else {
                continue;
            };
            let current = changes.get(&r.address).map(|c| c.action);
            if matches!(
                current,
                Some(Action::Replace | Action::Create | Action::Delete)
            ) {
                continue;
            }
            if current.is_none() {
                newly_replaced += 1;
            }
            let diffs = changes
                .remove(&r.address)
                .map(|c| c.diffs)
                .unwrap_or_default();
            let reason = format!("replaced together with `{cause}`, which it depends on");
            changes.insert(
                r.address.clone(),
                change(r, Some(found), Action::Replace, reason, diffs),
            );
            replaced.insert(r.address.clone());
            grew = true;
        }
        if !grew {
            return newly_replaced;
        }
    }
}

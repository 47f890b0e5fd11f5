//! From a plan to two phases of steps with their dependencies, checked before anything runs.
//!
//! Destroy phase: deletions and the destroy half of replacements. A resource is destroyed only
//! after everything in this phase that depends on it: `y` goes before `x` when `y`'s desired
//! resource depends on `x`, or when one of them is a deletion (whose dependencies are unknown, as
//! it is no longer in the stack) and `y` is of a higher layer ([`Kind::layer`]).
//!
//! Create phase: creations, updates and the create half of replacements. A step starts only after
//! the steps of this phase its desired resource depends on.
//!
//! [`Kind::layer`]: hermes_core::Kind::layer

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use hermes_core::Address;
use hermes_plan::{Action, Change, Plan};

use crate::error::EngineError;
use crate::report::{StepAction, StepRef};

/// One step: one provider call.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// The resource.
    pub(crate) address: Address,
    /// What the step does.
    pub(crate) action: StepAction,
    /// The change the step belongs to (a replacement gives two steps).
    pub(crate) change: Arc<Change>,
    /// Indices, in the same phase, of the steps that must succeed before this one starts.
    pub(crate) after: Vec<usize>,
}

impl Step {
    pub(crate) fn to_ref(&self) -> StepRef {
        StepRef {
            address: self.address.clone(),
            action: self.action,
        }
    }

    fn layer(&self) -> u8 {
        self.address.kind.layer()
    }

    fn depends_on(&self, address: &Address) -> bool {
        self.change
            .desired
            .as_ref()
            .is_some_and(|d| d.depends_on.contains(address))
    }
}

/// The steps of a plan, in two phases run one after the other.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    /// Deletions and destroy halves of replacements.
    pub(crate) destroy: Vec<Step>,
    /// Creations, updates and create halves of replacements.
    pub(crate) create: Vec<Step>,
}

impl Schedule {
    /// Every step, destroy phase first.
    pub(crate) fn steps(&self) -> impl Iterator<Item = &Step> {
        self.destroy.iter().chain(&self.create)
    }

    /// How many steps there are.
    pub(crate) fn len(&self) -> usize {
        self.destroy.len() + self.create.len()
    }
}

/// Orders `plan`'s changes into steps; refuses inconsistent plans.
pub(crate) fn schedule(plan: &Plan) -> Result<Schedule, EngineError> {
    let mut seen = BTreeSet::new();
    let mut destroy = Vec::new();
    let mut create = Vec::new();
    for change in &plan.changes {
        check(change)?;
        if !seen.insert(&change.address) {
            return Err(invalid(format!(
                "`{}` has more than one change",
                change.address
            )));
        }
        let change = Arc::new(change.clone());
        let step = |action| Step {
            address: change.address.clone(),
            action,
            change: Arc::clone(&change),
            after: Vec::new(),
        };
        match change.action {
            Action::Delete => destroy.push(step(StepAction::Delete)),
            Action::Replace => {
                destroy.push(step(StepAction::ReplaceDestroy));
                create.push(step(StepAction::ReplaceCreate));
            }
            Action::Create => create.push(step(StepAction::Create)),
            Action::Update => create.push(step(StepAction::Update)),
        }
    }

    destroy.sort_by(|a, b| (Reverse(a.layer()), &a.address).cmp(&(Reverse(b.layer()), &b.address)));
    let before: Vec<Vec<usize>> = (0..destroy.len())
        .map(|x| {
            (0..destroy.len())
                .filter(|&y| y != x && destroyed_first(&destroy[y], &destroy[x]))
                .collect()
        })
        .collect();
    for (step, after) in destroy.iter_mut().zip(before) {
        step.after = after;
    }

    create.sort_by(|a, b| (a.layer(), &a.address).cmp(&(b.layer(), &b.address)));
    let before: Vec<Vec<usize>> = create
        .iter()
        .map(|y| {
            (0..create.len())
                .filter(|&x| y.depends_on(&create[x].address))
                .collect()
        })
        .collect();
    for (step, after) in create.iter_mut().zip(before) {
        step.after = after;
    }

    check_acyclic(&destroy, "destroyed")?;
    check_acyclic(&create, "created")?;
    Ok(Schedule { destroy, create })
}

/// Whether `y` must be destroyed before `x`.
fn destroyed_first(y: &Step, x: &Step) -> bool {
    let unknown_deps = x.action == StepAction::Delete || y.action == StepAction::Delete;
    y.depends_on(&x.address) || (unknown_deps && y.layer() > x.layer())
}

/// A change carries what its steps need.
fn check(change: &Change) -> Result<(), EngineError> {
    let needs_desired = change.action != Action::Delete;
    let needs_observed = change.action != Action::Create;
    if needs_desired && change.desired.is_none() {
        return Err(invalid(format!(
            "the change to `{}` has no desired resource",
            change.address
        )));
    }
    if needs_observed && change.observed.is_none() {
        return Err(invalid(format!(
            "the change to `{}` has no observed resource",
            change.address
        )));
    }
    Ok(())
}

/// Refuses a phase whose steps wait for each other in a circle (it would never finish).
fn check_acyclic(steps: &[Step], verb: &str) -> Result<(), EngineError> {
    let mut waiting: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = vec![false; steps.len()];
    while let Some(i) = ready.pop() {
        done[i] = true;
        for (j, step) in steps.iter().enumerate() {
            if step.after.contains(&i) {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    let stuck: Vec<String> = steps
        .iter()
        .zip(&done)
        .filter(|(_, done)| !**done)
        .map(|(s, _)| format!("`{}`", s.address))
        .collect();
    if stuck.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{} depend on each other in a cycle and cannot be {verb} in any order",
            stuck.join(", ")
        )))
    }
}

fn invalid(reason: String) -> EngineError {
    EngineError::InvalidPlan { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::{Kind, ObservedResource, Resource, Scope};
    use hermes_plan::{Desired, plan};

    fn addr(kind: Kind, name: &str) -> Address {
        Address::new(kind, name)
    }

    fn names(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.address.to_string()).collect()
    }

    fn desired(resources: Vec<Resource>) -> Desired {
        Desired {
            scope: Scope::new("shop", "prod"),
            stack_digest: "sha256:stack".to_owned(),
            resources,
        }
    }

    #[test]
    fn deletions_fall_back_to_layers_and_replacements_split_in_two() {
        let observed = vec![
            ObservedResource::new(addr(Kind::Host, "old"), "1"),
            ObservedResource::new(addr(Kind::Agent, "gone"), "2"),
            ObservedResource::new(addr(Kind::Host, "h1"), "3").attr("size", "s"),
        ];
        let want = desired(vec![
            Resource::new(addr(Kind::Host, "h1")).fixed_attr("size", "m"),
        ]);
        let s = schedule(&plan(&want, &observed)).unwrap();
        assert_eq!(names(&s.destroy), ["agent.gone", "host.h1", "host.old"]);
        // The agent (layer 3, deleted) goes before both hosts; the two hosts are independent.
        assert_eq!(s.destroy[0].after, Vec::<usize>::new());
        assert_eq!(s.destroy[1].after, [0]);
        assert_eq!(s.destroy[2].after, [0]);
        assert_eq!(names(&s.create), ["host.h1"]);
        assert_eq!(s.create[0].action, StepAction::ReplaceCreate);
    }

    #[test]
    fn cycles_are_refused_before_anything_runs() {
        let a = addr(Kind::Agent, "a");
        let b = addr(Kind::Agent, "b");
        let want = desired(vec![
            Resource::new(a.clone()).after(b.clone()),
            Resource::new(b).after(a),
        ]);
        let err = schedule(&plan(&want, &[])).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        assert!(err.to_string().contains("`agent.a`, `agent.b`"), "{err}");
    }
}

//! Interned field names: `db` + `statement` -> `"db.statement"`, built once per program, not once
//! per request.
//!
//! Both parts come from `tracing` callsite metadata (`&'static str`), and a program has a fixed
//! set of callsites, so the set of names is finite and leaking one string per name is bounded. A
//! per-thread map answers the common case without a lock; the global map makes every thread share
//! one leaked string per name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

type Key = (&'static str, &'static str);

thread_local! {
    static LOCAL: RefCell<HashMap<Key, &'static str>> = RefCell::new(HashMap::new());
}

fn global() -> &'static Mutex<HashMap<Key, &'static str>> {
    static GLOBAL: OnceLock<Mutex<HashMap<Key, &'static str>>> = OnceLock::new();
    GLOBAL.get_or_init(Default::default)
}

/// `"{prefix}.{name}"`, as a `'static` string shared by every caller.
pub(crate) fn dotted(prefix: &'static str, name: &'static str) -> &'static str {
    let key = (prefix, name);
    if let Some(hit) = LOCAL.with(|m| m.try_borrow().ok().and_then(|m| m.get(&key).copied())) {
        return hit;
    }
    let interned = {
        let mut global = global().lock().unwrap_or_else(|p| p.into_inner());
        *global
            .entry(key)
            .or_insert_with(|| Box::leak(format!("{prefix}.{name}").into_boxed_str()))
    };
    LOCAL.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.insert(key, interned);
        }
    });
    interned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_string_per_name_across_threads() {
        let a = dotted("db", "statement");
        assert_eq!(a, "db.statement");
        let b = std::thread::spawn(|| dotted("db", "statement"))
            .join()
            .unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(dotted("db", "count"), "db.count");
    }
}

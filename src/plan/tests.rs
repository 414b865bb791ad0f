use super::*;

fn arms(w: &[(&str, u64)]) -> Vec<(String, u64)> {
    w.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect()
}

#[test]
fn variants_are_stable_and_follow_the_weights() {
    // 30 / 50 / 20 over 100k recipients: each share within 1 % of its weight.
    let three = arms(&[("a", 30), ("b", 50), ("c", 20)]);
    let mut n = [0u64; 3];
    for i in 0..100_000 {
        n[variant_index("promo", &format!("c{i}"), &three)] += 1;
    }
    for (got, want) in n.iter().zip([30_000u64, 50_000, 20_000]) {
        assert!(got.abs_diff(want) < 1_000, "{n:?}");
    }
    // The same recipient, the same variant; another campaign draws again.
    assert_eq!(
        variant_index("promo", "c7", &three),
        variant_index("promo", "c7", &three)
    );
    let moved = (0..1000)
        .filter(|i| {
            let id = format!("c{i}");
            variant_index("promo", &id, &three) != variant_index("other", &id, &three)
        })
        .count();
    assert!(moved > 300, "{moved}");
    // A weight of 0 is never drawn; no arm at all is the first.
    let off = arms(&[("a", 50), ("b", 0), ("c", 50)]);
    assert!((0..1000).all(|i| variant_index("p", &format!("{i}"), &off) != 1));
    assert_eq!(variant_index("p", "x", &[]), 0);
    // Pinned: the assignment is part of the data's meaning and must not change between
    // versions (a recipient would switch arms mid-test).
    let ab = arms(&[("a", 50), ("b", 50)]);
    assert_eq!(
        (0..8)
            .map(|i| variant_index("black-friday", &format!("c00{i}"), &ab))
            .collect::<Vec<_>>(),
        PINNED
    );
}

#[test]
fn reweighting_moves_only_the_recipients_that_must_move() {
    // Stopping `b` moves only b's recipients; raising `c` only moves recipients into c;
    // adding `d` only takes recipients into d. Nobody goes from one untouched arm to another.
    let before = arms(&[("a", 30), ("b", 30), ("c", 40)]);
    for (after, may_move_to) in [
        (arms(&[("a", 30), ("b", 0), ("c", 40)]), None),
        (arms(&[("a", 30), ("b", 30), ("c", 80)]), Some("c")),
        (
            arms(&[("a", 30), ("b", 30), ("c", 40), ("d", 20)]),
            Some("d"),
        ),
    ] {
        for i in 0..20_000 {
            let id = format!("r{i}");
            let was = &before[variant_index("ab", &id, &before)].0;
            let now = &after[variant_index("ab", &id, &after)].0;
            if was != now {
                match may_move_to {
                    None => assert_eq!(was, "b", "{id} moved {was} -> {now}"),
                    Some(to) => assert_eq!(now, to, "{id} moved {was} -> {now}"),
                }
            }
        }
    }
}
// Computed by Python: sha256(campaign \0 id \0 name), top 53 bits, -ln(u)/weight, lowest wins.
const PINNED: [usize; 8] = [1, 0, 1, 1, 0, 0, 1, 0];

#[test]
fn seen_ids_finds_repeats_in_sorted_and_unsorted_streams() {
    let check = |ids: &[&str]| -> Vec<bool> {
        let mut seen = SeenIds::new();
        assert!(
            matches!(seen.sorted, super::seen_ids::SortedHashes::Disk { .. }),
            "in-order ids go to a scratch file"
        );
        ids.iter().map(|id| seen.first_time(id).unwrap()).collect()
    };
    // Sorted throughout: never a set.
    assert_eq!(check(&["a", "b", "c"]), [true, true, true]);
    // The repeat is the first id out of order.
    assert_eq!(check(&["a", "b", "c", "b"]), [true, true, true, false]);
    // Equal to the last one is out of order too.
    assert_eq!(check(&["a", "b", "b"]), [true, true, false]);
    // After the order broke, earlier sorted ids and later ones are all remembered.
    assert_eq!(
        check(&["a", "c", "b", "a", "d", "d", "b"]),
        [true, true, true, false, true, false, false]
    );
}

/// A scratch file that fails (a full temporary directory) is an error, not a check skipped.
#[test]
fn seen_ids_report_a_failing_scratch_file() {
    let mut seen = SeenIds::new();
    seen.sorted = super::seen_ids::SortedHashes::Disk {
        spill: crate::spill::Spill::failing(),
        len: 0,
    };
    let failed = (0..10_000)
        .map(|n| seen.first_time(&format!("C{n:07}")))
        .find_map(Result::err);
    assert!(failed.is_some(), "a write past the buffer fails");
}

use super::*;

#[test]
fn variants_are_stable_and_follow_the_weights() {
    // 30 / 50 / 20 over 100k recipients: each share within 1 % of its weight.
    let ends = [30, 80, 100];
    let mut n = [0u64; 3];
    for i in 0..100_000 {
        n[variant_index("promo", &format!("c{i}"), &ends)] += 1;
    }
    for (got, want) in n.iter().zip([30_000u64, 50_000, 20_000]) {
        assert!(got.abs_diff(want) < 1_000, "{n:?}");
    }
    // The same recipient, the same variant; another campaign draws again.
    assert_eq!(
        variant_index("promo", "c7", &ends),
        variant_index("promo", "c7", &ends)
    );
    let moved = (0..1000)
        .filter(|i| {
            let id = format!("c{i}");
            variant_index("promo", &id, &ends) != variant_index("other", &id, &ends)
        })
        .count();
    assert!(moved > 300, "{moved}");
    // A weight of 0 is never drawn; no weights at all is the first.
    assert!((0..1000).all(|i| variant_index("p", &format!("{i}"), &[50, 50, 100]) != 1));
    assert_eq!(variant_index("p", "x", &[]), 0);
    // Pinned: the assignment is part of the data's meaning and must not change between
    // versions (a recipient would switch arms mid-test).
    assert_eq!(
        (0..8)
            .map(|i| variant_index("black-friday", &format!("c00{i}"), &[50, 100]))
            .collect::<Vec<_>>(),
        PINNED
    );
}
// Computed by Python: sha256(b"black-friday\0" + id), first 8 bytes big-endian, mod 100.
const PINNED: [usize; 8] = [1, 1, 0, 0, 1, 1, 1, 0];

#[test]
fn seen_ids_finds_repeats_in_sorted_and_unsorted_streams() {
    let check = |ids: &[&str]| -> Vec<bool> {
        let mut seen = SeenIds::new(std::path::Path::new("/nonexistent"));
        ids.iter().map(|id| seen.first_time(id)).collect()
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

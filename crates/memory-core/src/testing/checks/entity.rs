//! Checks written once for every entity kind through [`Crud`].

use anyhow::{Context, ensure};

use crate::entity::Entity;
use crate::error::ErrorKind;
use crate::limits::MAX_BATCH_ITEMS;
use crate::storage::StorageBackend;
use crate::testing::checks::expect_kind;
use crate::testing::crud::Crud;

async fn expect_stored<E: Crud>(
    b: &dyn StorageBackend,
    expected: &E,
    what: &str,
) -> anyhow::Result<()> {
    let got = E::get(b, expected.id()).await.context("get")?;
    ensure!(
        got.as_deref() == Some(expected),
        "{what}: get({}) returned {got:?}, expected {expected:?}",
        expected.id()
    );
    Ok(())
}

async fn expect_absent<E: Crud>(
    b: &dyn StorageBackend,
    id: E::Id,
    what: &str,
) -> anyhow::Result<()> {
    let got = E::get(b, id).await.context("get")?;
    ensure!(
        got.is_none(),
        "{what}: get({id}) returned {got:?}, expected None"
    );
    Ok(())
}

/// A stored item reads back equal, field for field.
pub async fn round_trip<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    for n in 0..8 {
        let item = E::sample(n);
        E::store(b, &item).await.context("store")?;
        expect_stored(b, &item, "after store").await?;
    }
    Ok(())
}

/// Storing an existing id replaces the whole item; the count does not grow.
pub async fn replace<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let first = E::sample(1);
    let second = first.modified();
    E::store(b, &first).await?;
    E::store(b, &second)
        .await
        .context("store the replacement")?;
    expect_stored(b, &second, "after replace").await?;
    ensure!(E::count(b).await? == 1, "a replace must not add an item");
    Ok(())
}

/// A deleted item is gone; deleting it again is `NotFound`; other items stay.
pub async fn delete<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let (a, other) = (E::sample(1), E::sample(2));
    E::store(b, &a).await?;
    E::store(b, &other).await?;
    E::delete(b, a.id()).await.context("delete")?;
    expect_absent::<E>(b, a.id(), "after delete").await?;
    expect_kind(
        E::delete(b, a.id()).await,
        ErrorKind::NotFound,
        "second delete",
    )?;
    expect_stored(b, &other, "the other item after delete").await?;
    E::store(b, &a).await.context("store again after delete")?;
    expect_stored(b, &a, "after re-store").await
}

/// Unknown ids: `get` is `None`, `delete` is a `NotFound` error naming the entity kind.
pub async fn missing_ids<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let id = E::unknown_id();
    expect_absent::<E>(b, id, "unknown id").await?;
    match E::delete(b, id).await {
        Err(crate::StorageError::NotFound { entity, id: named }) => {
            ensure!(
                entity == E::KIND,
                "NotFound names {entity}, expected {}",
                E::KIND
            );
            ensure!(
                named == id.to_string(),
                "NotFound names id {named}, expected {id}"
            );
        }
        other => anyhow::bail!("delete of an unknown id: expected NotFound, got {other:?}"),
    }
    let got = E::get_many(b, &[id, id]).await?;
    ensure!(
        got.len() == 2 && got.iter().all(Option::is_none),
        "get_many of unknown ids: {got:?}"
    );
    Ok(())
}

/// An invalid item is `InvalidInput`, and neither it nor the stored state changes.
pub async fn invalid_rejected<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let valid = E::sample(1);
    E::store(b, &valid).await?;
    let mut bad = E::invalid(1);
    ensure!(bad.validate().is_err(), "the invalid sample validates");
    expect_kind(
        E::store(b, &bad).await,
        ErrorKind::InvalidInput,
        "store of an invalid item",
    )?;
    expect_stored(b, &valid, "the stored item after a rejected replace").await?;
    bad = E::invalid(2);
    expect_kind(
        E::store(b, &bad).await,
        ErrorKind::InvalidInput,
        "store of an invalid item",
    )?;
    expect_absent::<E>(b, bad.id(), "a rejected item").await?;
    ensure!(
        E::count(b).await? == 1,
        "count changed after rejected stores"
    );
    Ok(())
}

/// A batch stores every item; `get_many` answers in the order asked, repeats and unknown
/// ids included.
pub async fn batch_round_trip<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let items: Vec<E> = (0..50).map(E::sample).collect();
    E::store_many(b, &items).await.context("store_many")?;
    ensure!(E::count(b).await? == 50, "count after store_many");
    let unknown = E::unknown_id();
    let ids = [
        items[7].id(),
        unknown,
        items[3].id(),
        items[7].id(),
        items[49].id(),
    ];
    let got = E::get_many(b, &ids).await.context("get_many")?;
    let expected = [
        Some(&items[7]),
        None,
        Some(&items[3]),
        Some(&items[7]),
        Some(&items[49]),
    ];
    ensure!(
        got.len() == ids.len(),
        "get_many returned {} entries for {} ids",
        got.len(),
        ids.len()
    );
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        ensure!(
            g.as_deref() == e,
            "get_many entry {i}: got {g:?}, expected {e:?}"
        );
    }
    // A batch may also replace existing items.
    let replaced: Vec<E> = items[..10].iter().map(Crud::modified).collect();
    E::store_many(b, &replaced)
        .await
        .context("store_many replacing")?;
    for item in &replaced {
        expect_stored(b, item, "after a replacing batch").await?;
    }
    ensure!(E::count(b).await? == 50, "count after a replacing batch");
    Ok(())
}

/// A batch with one invalid item stores nothing: no new item, no replacement.
pub async fn batch_store_is_atomic<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let existing = E::sample(1);
    E::store(b, &existing).await?;
    let fresh = E::sample(2);
    let batch = vec![
        existing.modified(),
        fresh.clone(),
        E::invalid(3),
        E::sample(4),
    ];
    expect_kind(
        E::store_many(b, &batch).await,
        ErrorKind::InvalidInput,
        "batch with an invalid item",
    )?;
    expect_stored(b, &existing, "existing item after a failed batch").await?;
    expect_absent::<E>(b, fresh.id(), "new item of a failed batch").await?;
    expect_absent::<E>(b, E::sample(4).id(), "last item of a failed batch").await?;
    ensure!(E::count(b).await? == 1, "count after a failed batch");
    Ok(())
}

/// A batch naming one id twice is `InvalidInput` and stores nothing.
pub async fn batch_duplicate_ids<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let a = E::sample(1);
    let batch = vec![a.clone(), E::sample(2), a.modified()];
    expect_kind(
        E::store_many(b, &batch).await,
        ErrorKind::InvalidInput,
        "batch with a repeated id",
    )?;
    ensure!(E::count(b).await? == 0, "a rejected batch stored items");
    let c = E::sample(3);
    E::store(b, &c).await?;
    expect_kind(
        E::delete_many(b, &[c.id(), c.id()]).await,
        ErrorKind::InvalidInput,
        "delete_many with a repeated id",
    )?;
    expect_stored(b, &c, "item after a rejected delete_many").await
}

/// `delete_many` removes exactly the named items.
pub async fn batch_delete<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let items: Vec<E> = (0..20).map(E::sample).collect();
    E::store_many(b, &items).await?;
    let doomed: Vec<E::Id> = items.iter().step_by(2).map(Entity::id).collect();
    E::delete_many(b, &doomed).await.context("delete_many")?;
    for (i, item) in items.iter().enumerate() {
        if i % 2 == 0 {
            expect_absent::<E>(b, item.id(), "deleted item").await?;
        } else {
            expect_stored(b, item, "kept item").await?;
        }
    }
    ensure!(E::count(b).await? == 10, "count after delete_many");
    Ok(())
}

/// `delete_many` with one unknown id is `NotFound` and deletes nothing.
pub async fn batch_delete_is_atomic<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    let (x, y) = (E::sample(1), E::sample(2));
    E::store_many(b, &[x.clone(), y.clone()]).await?;
    expect_kind(
        E::delete_many(b, &[x.id(), E::unknown_id(), y.id()]).await,
        ErrorKind::NotFound,
        "delete_many with an unknown id",
    )?;
    expect_stored(b, &x, "first item after a failed delete_many").await?;
    expect_stored(b, &y, "last item after a failed delete_many").await?;
    ensure!(E::count(b).await? == 2, "count after a failed delete_many");
    Ok(())
}

/// Empty batches are no-ops; a batch over `MAX_BATCH_ITEMS` is `InvalidInput`.
pub async fn batch_limits<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    E::store_many(b, &[]).await.context("empty store_many")?;
    ensure!(
        E::get_many(b, &[]).await?.is_empty(),
        "empty get_many returned entries"
    );
    E::delete_many(b, &[]).await.context("empty delete_many")?;
    let too_many = vec![E::unknown_id(); MAX_BATCH_ITEMS + 1];
    expect_kind(
        E::get_many(b, &too_many).await,
        ErrorKind::InvalidInput,
        "oversized get_many",
    )?;
    expect_kind(
        E::delete_many(b, &too_many).await,
        ErrorKind::InvalidInput,
        "oversized delete_many",
    )?;
    let item = E::sample(0);
    let oversized = vec![item; MAX_BATCH_ITEMS + 1];
    expect_kind(
        E::store_many(b, &oversized).await,
        ErrorKind::InvalidInput,
        "oversized store_many",
    )?;
    ensure!(E::count(b).await? == 0, "count after rejected batches");
    Ok(())
}

/// Counts follow single and batch writes and deletes.
pub async fn counts<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    ensure!(E::count(b).await? == 0, "a fresh backend is not empty");
    E::store(b, &E::sample(0)).await?;
    E::store_many(b, &(1..6).map(E::sample).collect::<Vec<_>>()).await?;
    ensure!(E::count(b).await? == 6, "count after 6 stores");
    E::delete(b, E::sample(0).id()).await?;
    E::delete_many(b, &[E::sample(1).id(), E::sample(2).id()]).await?;
    ensure!(E::count(b).await? == 3, "count after 3 deletes");
    Ok(())
}

/// Writers on several tasks at once, with a reader alongside: every write lands.
pub async fn concurrent_writes<E: Crud>(b: &dyn StorageBackend) -> anyhow::Result<()> {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 12;
    // The backend is borrowed, so the tasks run concurrently on this task, interleaving at
    // every await point of the backend.
    let writers = (0..TASKS).map(|t| async move {
        for i in 0..PER_TASK {
            let n = t * 1_000 + i;
            if i % 3 == 0 {
                E::store_many(b, &[E::sample(n), E::sample(n + 500)]).await?;
            } else {
                E::store(b, &E::sample(n)).await?;
            }
        }
        anyhow::Ok(())
    });
    let total = TASKS * (PER_TASK + PER_TASK.div_ceil(3));
    // Reads task 0's items while they are written: each is absent or exactly what was
    // written, never absent again once seen, and the count never goes down.
    let reader = async {
        let mut seen = vec![false; PER_TASK as usize];
        let mut last_count = 0;
        for _ in 0..PER_TASK {
            for i in 0..PER_TASK {
                let expected = E::sample(i);
                let got = E::get(b, expected.id()).await?;
                match got {
                    Some(got) => {
                        ensure!(*got == expected, "a concurrent read got {got:?}");
                        seen[i as usize] = true;
                    }
                    None => ensure!(
                        !seen[i as usize],
                        "item {i} was read back, then read as absent"
                    ),
                }
            }
            let count = E::count(b).await?;
            ensure!(
                (last_count..=total).contains(&count),
                "count {count} after {last_count} (at most {total})"
            );
            last_count = count;
        }
        anyhow::Ok(())
    };
    let (written, read) = futures::join!(futures::future::try_join_all(writers), reader);
    written.context("a concurrent writer failed")?;
    read.context("a concurrent reader failed")?;
    let mut expected: Vec<E> = Vec::new();
    for t in 0..TASKS {
        for i in 0..PER_TASK {
            expected.push(E::sample(t * 1_000 + i));
            if i % 3 == 0 {
                expected.push(E::sample(t * 1_000 + i + 500));
            }
        }
    }
    let count = E::count(b).await?;
    ensure!(
        count == expected.len() as u64,
        "count {count}, expected {}",
        expected.len()
    );
    let ids: Vec<E::Id> = expected.iter().map(Entity::id).collect();
    let got = E::get_many(b, &ids).await?;
    for (g, e) in got.iter().zip(&expected) {
        ensure!(
            g.as_deref() == Some(e),
            "after concurrent writes got {g:?}, expected {e:?}"
        );
    }
    Ok(())
}

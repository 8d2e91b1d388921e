//! The loupe on-disk contract, shared by the collector (which writes) and the query engine
//! (which reads): where a dataset's files live, how dataset names are checked, the merged schema
//! with its type-conflict policy, how events become Arrow columns, and how Parquet is written.
//!
//! ```
//! use loupe_event::{Event, Limits};
//! use loupe_store::{Catalog, DatasetName, Partition, Store, events_to_batch, write_parquet};
//!
//! let root = tempfile::tempdir()?;
//! let store = Store::new(root.path());
//! let api = store.dataset(&DatasetName::new("api")?);
//!
//! let event = Event::new().with("http.route", "/cart").with("duration_ms", 48.0);
//! let events = vec![event.validate(&Limits::default(), 1_795_400_000_000_000)?];
//! let mut catalog = Catalog::load(&api.catalog_dir())?;
//! let batch = events_to_batch(&events, &mut catalog, 0)?;
//! catalog.save_if_changed(&api.catalog_dir())?;
//!
//! let dir = api.partition_dir(&Partition::of(events[0].timestamp_us()));
//! loupe_store::fsutil::create_dir_durable(&dir)?;
//! write_parquet(&dir.join("0001.parquet"), &batch)?;
//! assert_eq!(api.parquet_files()?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See `store/README.md` for the layout and the policies in one place.

mod batch;
pub mod catalog;
pub mod compact;
mod dataset;
mod error;
pub mod fsutil;
pub mod layout;
mod parquet_file;
pub mod summary;

pub use batch::events_to_batch;
pub use catalog::{Catalog, FieldType};
pub use compact::{CompactError, CompactStats};
pub use dataset::{DatasetName, MAX_DATASET_NAME_BYTES};
pub use error::{Error, Result};
pub use layout::{DatasetDir, Partition, Store};
pub use parquet_file::{ROW_GROUP_ROWS, ZSTD_LEVEL, write_parquet, writer_properties};

#[cfg(test)]
mod tests;

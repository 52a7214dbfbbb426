//! User-defined functions: versioned Rust functions that computed columns and queries call,
//! and the registry of them that a catalog handle knows.
//!
//! A UDF is identified by (name, version). A computed column stores the call with both, so
//! a changed function must get a new version, and a table whose UDF is missing or has
//! another version refuses the writes that would need it, with an error naming both.

mod policy;

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::store::{args_key, ArgsKey, Results, ResultsAt};
pub use policy::RetryPolicy;
use policy::{CallPolicy, RateLimit};

use crate::error::{err, Result};
use crate::expr::Expr;
use crate::schema::TableSchema;
use crate::types::{ColumnType, Value};

type RowFn = dyn Fn(Vec<Value>) -> std::result::Result<Value, UdfError> + Send + Sync;
type BatchFn = dyn Fn(&[Vec<Value>]) -> Vec<std::result::Result<Value, String>> + Send + Sync;
/// Told each row's result as soon as it is known (for remembering it).
pub(crate) type Observer<'a> = dyn Fn(usize, &std::result::Result<Value, CellError>) + Sync + 'a;

enum Body {
    Row(Box<RowFn>),
    Batch(Box<BatchFn>),
}

/// A versioned Rust function over column values.
///
/// ```
/// use tabula::{col, Udf};
/// // Typed: the signature comes from the closure. Null arguments skip the call (null result)
/// // unless the parameter is an `Option`.
/// let shout = Udf::new("shout", 1, |s: String| format!("{}!", s.to_uppercase()));
/// assert_eq!(shout.call([col("title")]).to_string(), "shout@1(title)");
/// ```
#[derive(Clone)]
pub struct Udf {
    inner: Arc<Inner>,
    policy: CallPolicy,
}

/// How a typed UDF's call failed, when it says more than a message: a `Transient` failure
/// (a timeout, a rate limit answered by the server, a service briefly down) is tried again
/// under the UDF's [`RetryPolicy`]; a `Permanent` one is not. A closure returning
/// `Result<T, E>` with any other `E` fails permanently with `E`'s text.
///
/// ```
/// use tabula::{Udf, UdfError};
/// let lookup = Udf::new("lookup", 1, |id: i64| -> Result<String, UdfError> {
///     if id < 0 {
///         return Err(UdfError::Permanent(format!("no such id {id}")));
///     }
///     Err(UdfError::Transient("the service answered 503".into()))
/// });
/// # let _ = lookup;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdfError {
    /// Worth trying again.
    Transient(String),
    /// Not worth trying again.
    Permanent(String),
}

impl fmt::Display for UdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdfError::Transient(m) | UdfError::Permanent(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for UdfError {}

struct Inner {
    name: String,
    version: u32,
    params: Vec<ColumnType>,
    /// Per parameter: whether a null is passed in (an `Option` parameter) instead of
    /// skipping the call.
    takes_null: Vec<bool>,
    returns: ColumnType,
    body: Body,
    /// Calls made, and of a sample of them (the first 64, then one in 32) how many and
    /// the time they took in nanoseconds: what estimates work from, at the cost of a clock
    /// read on few calls.
    calls: AtomicU64,
    sampled: AtomicU64,
    sampled_nanos: AtomicU64,
}

/// Why one cell could not be computed: kept in the cell's error slot under
/// `OnError::Ignore`, or reported as the error of the call under `OnError::Abort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// What kind of failure.
    pub kind: CellErrorKind,
    /// What happened.
    pub message: String,
}

/// The kind of a [`CellError`]; its text is what `errortype()` reads from a stored error slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellErrorKind {
    /// The UDF returned an error.
    UdfError,
    /// The UDF panicked (the panic was caught).
    UdfPanic,
    /// The UDF returned a value of another type than it declares.
    UdfTypeError,
    /// A batch UDF returned another number of results than it got rows.
    UdfBatchError,
    /// The UDF failed with a [`UdfError::Transient`] error on its last attempt.
    UdfTransient,
    /// The call took longer than the UDF's timeout (see [`Udf::timeout`]).
    UdfTimeout,
    /// A computed column this one reads failed for the row, so this one was not computed
    /// (its UDF not called); the message names the column where the failure started.
    UpstreamError,
}

impl CellErrorKind {
    /// The kind as stored in error slots and read by `errortype()`.
    pub fn as_str(self) -> &'static str {
        match self {
            CellErrorKind::UdfError => "UdfError",
            CellErrorKind::UdfPanic => "UdfPanic",
            CellErrorKind::UdfTypeError => "UdfTypeError",
            CellErrorKind::UdfBatchError => "UdfBatchError",
            CellErrorKind::UdfTransient => "UdfTransient",
            CellErrorKind::UdfTimeout => "UdfTimeout",
            CellErrorKind::UpstreamError => "UpstreamError",
        }
    }
}

impl fmt::Display for CellErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl CellError {
    pub(crate) fn new(kind: CellErrorKind, message: impl Into<String>) -> CellError {
        CellError { kind, message: message.into() }
    }
}

impl fmt::Debug for Udf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Udf({}@{})", self.inner.name, self.inner.version)
    }
}

impl Udf {
    /// A row-wise UDF from a typed closure of one to four arguments. Arguments and the
    /// result are `i64`, `f64`, `bool`, `String`, `Vec<u8>`, `serde_json::Value`, or an
    /// `Option` of one; the closure may return `Result<T, E>` with `E: Display`.
    pub fn new<Args, F: IntoUdfFn<Args>>(name: impl Into<String>, version: u32, f: F) -> Udf {
        let (params, takes_null, returns) = F::signature();
        Udf::build(name, version, params, takes_null, returns, Body::Row(f.into_fn()))
    }

    /// A row-wise UDF over untyped values, for signatures decided at run time. Null
    /// arguments skip the call.
    pub fn row(
        name: impl Into<String>,
        version: u32,
        params: impl IntoIterator<Item = ColumnType>,
        returns: ColumnType,
        f: impl Fn(&[Value]) -> std::result::Result<Value, String> + Send + Sync + 'static,
    ) -> Udf {
        let params: Vec<ColumnType> = params.into_iter().collect();
        let takes_null = vec![false; params.len()];
        let body = Box::new(move |args: Vec<Value>| f(&args).map_err(UdfError::Permanent));
        Udf::build(name, version, params, takes_null, returns, Body::Row(body))
    }

    /// A batch UDF: called once with many rows (each the argument values of one row, none
    /// null) and returning one result a row, for model-like work that is cheaper in bulk.
    pub fn batch(
        name: impl Into<String>,
        version: u32,
        params: impl IntoIterator<Item = ColumnType>,
        returns: ColumnType,
        f: impl Fn(&[Vec<Value>]) -> Vec<std::result::Result<Value, String>> + Send + Sync + 'static,
    ) -> Udf {
        let params: Vec<ColumnType> = params.into_iter().collect();
        let takes_null = vec![false; params.len()];
        Udf::build(name, version, params, takes_null, returns, Body::Batch(Box::new(f)))
    }

    fn build(
        name: impl Into<String>,
        version: u32,
        params: Vec<ColumnType>,
        takes_null: Vec<bool>,
        returns: ColumnType,
        body: Body,
    ) -> Udf {
        Udf {
            inner: Arc::new(Inner {
                name: name.into(),
                version,
                params,
                takes_null,
                returns,
                body,
                calls: AtomicU64::new(0),
                sampled: AtomicU64::new(0),
                sampled_nanos: AtomicU64::new(0),
            }),
            policy: CallPolicy::new(),
        }
    }

    /// Lets up to `n` calls be in flight at once (threads; 1 by default): for a UDF that
    /// waits on an API or a model server. Adding a column, inserting and previewing use it;
    /// results still land in row order and the write is still one version. A batch UDF gets
    /// its batch split in up to `n` parts called at once.
    pub fn concurrency(mut self, n: usize) -> Udf {
        self.policy.concurrency = n.max(1);
        self
    }

    /// At most `calls_per_second` calls a second, shared by every use of this UDF (name and
    /// version) in the process: every handle, table and thread.
    pub fn rate_limit(mut self, calls_per_second: f64) -> Udf {
        self.policy.rate = Some(RateLimit::shared(&self.inner.name, self.inner.version, calls_per_second));
        self
    }

    /// A call of a row UDF that takes longer than `limit` gives its cell a `UdfTimeout`
    /// error (retried like a transient one under a [`RetryPolicy`]). The call itself cannot
    /// be stopped: it finishes on its own thread and its result is dropped.
    pub fn timeout(mut self, limit: Duration) -> Udf {
        self.policy.timeout = Some(limit);
        self
    }

    /// Tries calls that failed transiently ([`UdfError::Transient`], or a timeout) again
    /// under `policy`; permanent failures are never retried. Row UDFs only: a batch UDF's
    /// results carry no such distinction.
    pub fn retry(mut self, policy: RetryPolicy) -> Udf {
        self.policy.retry = Some(policy);
        self
    }

    /// Whether the results of this UDF are remembered in the catalog, keyed by name, version
    /// and arguments, so each is paid for once: a preview's rows are not called again by the
    /// add that follows, and an add run again after a kill or a failure calls only the rows
    /// it had not computed. On by default for a UDF declared expensive (with a concurrency,
    /// a rate limit, a timeout or retries), off for others (a lookup and a write a call cost
    /// more than a cheap function); `false` for a UDF whose result may differ from call to
    /// call (a clock, a random choice). Results are keyed by name and version: a function
    /// whose behaviour changes must get a new version (the testkit's UDF check enforces it),
    /// or `Catalog::forget_results` its old results.
    pub fn remember(mut self, yes: bool) -> Udf {
        self.policy.remember = Some(yes);
        self
    }

    /// Whether this UDF's results are remembered (see [`Udf::remember`]).
    pub(crate) fn remembers(&self) -> bool {
        self.policy.remember.unwrap_or(!self.policy.is_plain() || self.policy.concurrency > 1)
    }

    /// Calls in flight at most.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.policy.concurrency.max(1)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.inner.version
    }

    /// The parameter types.
    pub fn params(&self) -> &[ColumnType] {
        &self.inner.params
    }

    /// The result type.
    pub fn returns(&self) -> ColumnType {
        self.inner.returns
    }

    /// True for a batch UDF.
    pub fn is_batch(&self) -> bool {
        matches!(self.inner.body, Body::Batch(_))
    }

    /// An expression calling this UDF: `summarize.call([col("text")])`.
    pub fn call(&self, args: impl IntoIterator<Item = Expr>) -> Expr {
        Expr::Udf {
            name: self.inner.name.clone(),
            version: self.inner.version,
            params: self.inner.params.clone(),
            returns: self.inner.returns,
            args: args.into_iter().collect(),
        }
    }

    /// Whether the UDF takes one row a call (a batch UDF takes many).
    pub(crate) fn is_row(&self) -> bool {
        matches!(self.inner.body, Body::Row(_))
    }

    /// Calls a row UDF on one row's arguments under its policy (rate limit, timeout,
    /// retries), as [`Udf::invoke`] does for each row (a batch UDF is called with a batch of
    /// one).
    pub(crate) fn invoke_row(&self, args: Vec<Value>) -> std::result::Result<Value, CellError> {
        let inner = &self.inner;
        let Body::Row(_) = &inner.body else {
            return self.invoke(vec![args]).pop().unwrap_or(Ok(Value::Null));
        };
        if args.iter().zip(&inner.takes_null).any(|(a, takes)| a.is_null() && !takes) {
            return Ok(Value::Null);
        }
        if self.policy.is_plain() {
            return self.call_once(args);
        }
        let attempts = self.policy.retry.map_or(1, |r| r.attempts);
        let (mut attempt, mut args) = (1, Some(args));
        loop {
            // The last attempt gets the arguments themselves, the others a copy.
            let this = if attempt < attempts { args.clone() } else { args.take() };
            let out = self.call_limited(this.unwrap_or_default());
            let transient =
                matches!(&out, Err(e) if matches!(e.kind, CellErrorKind::UdfTransient | CellErrorKind::UdfTimeout));
            match (transient, self.policy.retry) {
                (true, Some(retry)) if attempt < attempts => {
                    std::thread::sleep(retry.wait(attempt));
                    attempt += 1;
                }
                (true, Some(_)) if attempts > 1 => {
                    return out.map_err(|e| {
                        CellError::new(e.kind, format!("{} (gave up after {attempts} attempts)", e.message))
                    })
                }
                _ => return out,
            }
        }
    }

    /// One call after waiting for the rate limit, bounded by the timeout.
    fn call_limited(&self, args: Vec<Value>) -> std::result::Result<Value, CellError> {
        if let Some(rate) = &self.policy.rate {
            rate.acquire();
        }
        let Some(limit) = self.policy.timeout else { return self.call_once(args) };
        let (send, receive) = std::sync::mpsc::channel();
        let udf = self.clone();
        std::thread::spawn(move || {
            // The receiver is gone when the call timed out: nothing to tell.
            let _ = send.send(udf.call_once(args));
        });
        receive.recv_timeout(limit).unwrap_or_else(|_| {
            Err(CellError::new(
                CellErrorKind::UdfTimeout,
                format!("{}@{} took longer than {limit:?}", self.inner.name, self.inner.version),
            ))
        })
    }

    /// One plain call of a row UDF, its panic caught.
    fn call_once(&self, args: Vec<Value>) -> std::result::Result<Value, CellError> {
        let Body::Row(f) = &self.inner.body else { return Ok(Value::Null) };
        let n = self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let started = (n < 64 || n.is_multiple_of(32)).then(std::time::Instant::now);
        let out = catch_unwind(AssertUnwindSafe(|| f(args)));
        if let Some(started) = started {
            self.spent(1, started.elapsed());
        }
        match out {
            Ok(r) => self.checked(r),
            Err(panic) => Err(CellError::new(CellErrorKind::UdfPanic, panic_message(&panic))),
        }
    }

    fn spent(&self, calls: u64, time: Duration) {
        self.inner.sampled.fetch_add(calls, Ordering::Relaxed);
        self.inner.sampled_nanos.fetch_add(time.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// The mean time a call (a row, for a batch UDF) has taken in this process, once it has
    /// been called: what [`Table::estimate`](crate::Table::estimate) works from.
    pub fn mean_call_time(&self) -> Option<Duration> {
        let calls = self.inner.sampled.load(Ordering::Relaxed);
        (calls > 0).then(|| Duration::from_nanos(self.inner.sampled_nanos.load(Ordering::Relaxed) / calls))
    }

    /// The calls a second its rate limit allows, if it has one.
    pub(crate) fn calls_per_second(&self) -> Option<f64> {
        self.policy.rate.as_ref().map(|r| r.per_second())
    }

    /// A body's result as a cell: its error, or its value of the declared type.
    fn checked(&self, r: std::result::Result<Value, UdfError>) -> std::result::Result<Value, CellError> {
        let inner = &self.inner;
        let v = r.map_err(|e| match e {
            UdfError::Transient(m) => CellError::new(CellErrorKind::UdfTransient, m),
            UdfError::Permanent(m) => CellError::new(CellErrorKind::UdfError, m),
        })?;
        let found = v.type_name();
        crate::expr::func::normalize(v).coerce_to(inner.returns).map_err(|_| {
            CellError::new(
                CellErrorKind::UdfTypeError,
                format!(
                    "{}@{} returned {found}, but it is declared to return {}",
                    inner.name, inner.version, inner.returns
                ),
            )
        })
    }

    /// Calls the UDF on the argument values of many rows (moved in, so a typed UDF gets its
    /// `String`s without a copy). Null arguments (for parameters that do not take them) give
    /// null without a call; a panic is caught and becomes that row's error (every row's, for
    /// a batch UDF); a result of the wrong type is an error.
    pub fn invoke(&self, rows: Vec<Vec<Value>>) -> Vec<std::result::Result<Value, CellError>> {
        self.invoke_observed(rows, &|_, _| {})
    }

    /// [`Udf::invoke`], telling `observe` each row's result (by its index) as soon as it is
    /// known: a row UDF's after each call, a batch UDF's after the batch.
    pub(crate) fn invoke_observed(
        &self,
        rows: Vec<Vec<Value>>,
        observe: &Observer<'_>,
    ) -> Vec<std::result::Result<Value, CellError>> {
        let out = self.invoke_inner(rows, observe);
        if !self.is_row() {
            for (i, r) in out.iter().enumerate() {
                observe(i, r);
            }
        }
        out
    }

    fn invoke_inner(
        &self,
        rows: Vec<Vec<Value>>,
        observe: &Observer<'_>,
    ) -> Vec<std::result::Result<Value, CellError>> {
        let inner = &self.inner;
        let skip = |args: &Vec<Value>| args.iter().zip(&inner.takes_null).any(|(a, takes)| a.is_null() && !takes);
        let check = |r: std::result::Result<Value, String>| self.checked(r.map_err(UdfError::Permanent));
        match &inner.body {
            Body::Row(_) if self.max_in_flight() > 1 && rows.len() > 1 => self.invoke_rows_at_once(rows, observe),
            Body::Row(_) => rows
                .into_iter()
                .enumerate()
                .map(|(i, args)| {
                    let out = self.invoke_row(args);
                    observe(i, &out);
                    out
                })
                .collect(),
            Body::Batch(_) if self.max_in_flight() > 1 && rows.len() > 1 => {
                let parts = self.max_in_flight().min(rows.len());
                let size = rows.len().div_ceil(parts);
                let mut chunks: Vec<Vec<Vec<Value>>> = Vec::new();
                let mut rows = rows.into_iter().peekable();
                while rows.peek().is_some() {
                    chunks.push(rows.by_ref().take(size).collect());
                }
                std::thread::scope(|s| {
                    let running: Vec<_> = chunks
                        .into_iter()
                        .map(|chunk| {
                            let udf =
                                Udf { policy: CallPolicy { concurrency: 1, ..self.policy.clone() }, ..self.clone() };
                            s.spawn(move || udf.invoke(chunk))
                        })
                        .collect();
                    running
                        .into_iter()
                        .flat_map(|h| {
                            h.join().unwrap_or_else(|_| {
                                vec![Err(CellError::new(CellErrorKind::UdfPanic, "a batch part panicked"))]
                            })
                        })
                        .collect()
                })
            }
            Body::Batch(f) => {
                if let Some(rate) = &self.policy.rate {
                    rate.acquire();
                }
                let called: Vec<usize> = (0..rows.len()).filter(|i| !skip(&rows[*i])).collect();
                let total = rows.len();
                let mut rows: Vec<Option<Vec<Value>>> = rows.into_iter().map(Some).collect();
                let args: Vec<Vec<Value>> = called.iter().filter_map(|i| rows[*i].take()).collect();
                let mut out: Vec<std::result::Result<Value, CellError>> = vec![Ok(Value::Null); total];
                if args.is_empty() {
                    return out;
                }
                let started = std::time::Instant::now();
                let results = catch_unwind(AssertUnwindSafe(|| f(&args)));
                self.spent(args.len() as u64, started.elapsed());
                match results {
                    Ok(results) if results.len() == args.len() => {
                        for (i, r) in called.into_iter().zip(results) {
                            out[i] = check(r);
                        }
                    }
                    Ok(results) => {
                        let e = CellError::new(
                            CellErrorKind::UdfBatchError,
                            format!(
                                "{}@{} returned {} results for {} rows",
                                inner.name,
                                inner.version,
                                results.len(),
                                args.len()
                            ),
                        );
                        for i in called {
                            out[i] = Err(e.clone());
                        }
                    }
                    Err(panic) => {
                        let e = CellError::new(CellErrorKind::UdfPanic, panic_message(&panic));
                        for i in called {
                            out[i] = Err(e.clone());
                        }
                    }
                }
                out
            }
        }
    }
}

impl Udf {
    /// Calls a row UDF on many rows with up to [`Udf::concurrency`] calls in flight, each
    /// under the UDF's policy; the results in row order.
    fn invoke_rows_at_once(
        &self,
        rows: Vec<Vec<Value>>,
        observe: &Observer<'_>,
    ) -> Vec<std::result::Result<Value, CellError>> {
        let total = rows.len();
        let next = AtomicUsize::new(0);
        let inputs: Vec<Mutex<Option<Vec<Value>>>> = rows.into_iter().map(|r| Mutex::new(Some(r))).collect();
        let outputs: Vec<Mutex<Option<std::result::Result<Value, CellError>>>> =
            (0..total).map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.max_in_flight().min(total) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let args = inputs[i].lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
                    let out = self.invoke_row(args);
                    observe(i, &out);
                    *outputs[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
                });
            }
        });
        outputs
            .into_iter()
            .map(|o| {
                o.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| Err(CellError::new(CellErrorKind::UdfPanic, "the call's thread stopped")))
            })
            .collect()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Rust types a typed UDF takes and returns.
pub trait UdfValue: Sized {
    /// The column type.
    const TYPE: ColumnType;
    /// True for `Option<T>`: nulls are passed in rather than skipping the call.
    const TAKES_NULL: bool = false;
    /// Reads an argument (moved out of the row).
    fn from_arg(v: Value) -> std::result::Result<Self, String>;
    /// Makes a result.
    fn into_result(self) -> Value;
}

macro_rules! udf_value {
    ($($t:ty => $ty:ident),*) => {$(
        impl UdfValue for $t {
            const TYPE: ColumnType = ColumnType::$ty;
            fn from_arg(v: Value) -> std::result::Result<Self, String> {
                crate::types::FromValue::from_owned(v)
            }
            fn into_result(self) -> Value {
                Value::from(self)
            }
        }
    )*};
}
udf_value!(i64 => Int, f64 => Float, bool => Bool, String => String, Vec<u8> => Bytes, serde_json::Value => Json);

impl<T: UdfValue> UdfValue for Option<T> {
    const TYPE: ColumnType = T::TYPE;
    const TAKES_NULL: bool = true;
    fn from_arg(v: Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_arg(v).map(Some),
        }
    }
    fn into_result(self) -> Value {
        self.map(T::into_result).unwrap_or(Value::Null)
    }
}

/// What a typed UDF closure may return: a value, or `Result<value, E: Display>`.
pub trait UdfReturn {
    /// The column type of the value.
    const TYPE: ColumnType;
    /// The value, or how the call failed.
    fn into_value(self) -> std::result::Result<Value, UdfError>;
}

impl<T: UdfValue> UdfReturn for T {
    const TYPE: ColumnType = T::TYPE;
    fn into_value(self) -> std::result::Result<Value, UdfError> {
        Ok(self.into_result())
    }
}

impl<T: UdfValue, E: fmt::Display + 'static> UdfReturn for std::result::Result<T, E> {
    const TYPE: ColumnType = T::TYPE;
    fn into_value(self) -> std::result::Result<Value, UdfError> {
        self.map(T::into_result).map_err(|e| match (&e as &dyn std::any::Any).downcast_ref::<UdfError>() {
            Some(said) => said.clone(),
            None => UdfError::Permanent(e.to_string()),
        })
    }
}

/// Closures that can be typed UDFs (one to four arguments); see [`Udf::new`].
pub trait IntoUdfFn<Args> {
    /// (parameter types, which take nulls, result type)
    fn signature() -> (Vec<ColumnType>, Vec<bool>, ColumnType);
    /// The closure over untyped values.
    fn into_fn(self) -> Box<RowFn>;
}

macro_rules! into_udf_fn {
    ($($a:ident $v:ident $i:tt),*) => {
        impl<F, R, $($a),*> IntoUdfFn<($($a,)*)> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
            R: UdfReturn,
            $($a: UdfValue,)*
        {
            fn signature() -> (Vec<ColumnType>, Vec<bool>, ColumnType) {
                (vec![$($a::TYPE),*], vec![$($a::TAKES_NULL),*], R::TYPE)
            }
            fn into_fn(self) -> Box<RowFn> {
                Box::new(move |args: Vec<Value>| {
                    let n = [$($i),*].len();
                    if args.len() != n {
                        return Err(UdfError::Permanent(format!("expected {n} arguments, found {}", args.len())));
                    }
                    let mut args = args.into_iter();
                    $(let $v = $a::from_arg(args.next().unwrap_or(Value::Null)).map_err(UdfError::Permanent)?;)*
                    self($($v),*).into_value()
                })
            }
        }
    };
}
into_udf_fn!(A a 0);
into_udf_fn!(A a 0, B b 1);
into_udf_fn!(A a 0, B b 1, C c 2);
into_udf_fn!(A a 0, B b 1, C c 2, D d 3);

/// The UDFs registered on a catalog handle (shared by its clones), by name and version: a
/// handle can hold several versions of one UDF, and each computed column uses exactly the
/// version it stores.
/// How far a long computed-column fill has come: what [`Catalog::on_progress`] observers
/// are told after each batch of rows.
///
/// [`Catalog::on_progress`]: crate::Catalog::on_progress
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The table.
    pub table: String,
    /// The computed column.
    pub column: String,
    /// Rows done so far.
    pub done: u64,
    /// Rows to do in all.
    pub total: u64,
    /// Rows whose cell failed so far.
    pub failed: u64,
    /// Time since the fill started.
    pub elapsed: Duration,
}

impl Progress {
    /// Rows a second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The time left at the rate so far; `None` before the first row.
    pub fn eta(&self) -> Option<Duration> {
        (self.done > 0).then(|| Duration::from_secs_f64(self.total.saturating_sub(self.done) as f64 / self.rate()))
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}: {}/{} rows", self.table, self.column, self.done, self.total)?;
        if self.failed > 0 {
            write!(f, " ({} failed)", self.failed)?;
        }
        write!(f, ", {:.0} rows/s", self.rate())?;
        if let Some(eta) = self.eta() {
            write!(f, ", {:.0} s left", eta.as_secs_f64())?;
        }
        Ok(())
    }
}

type ProgressFn = dyn Fn(&Progress) + Send + Sync;

pub(crate) struct Registry {
    udfs: RwLock<HashMap<(String, u32), Udf>>,
    /// Told how long fills are coming along (see [`crate::Catalog::on_progress`]).
    progress: RwLock<Option<Arc<ProgressFn>>>,
    /// Remembered results of the UDFs that remember them.
    results: Arc<Results>,
    session: Arc<Session>,
}

impl Registry {
    pub(crate) fn new(results: ResultsAt) -> Registry {
        Registry {
            udfs: RwLock::default(),
            progress: RwLock::default(),
            results: Arc::new(Results::new(results)),
            session: Arc::default(),
        }
    }

    /// Calls `udf` on many rows as [`Udf::invoke`] does, serving the results it remembers
    /// and remembering each new one as soon as it is computed. The results are a cache: one
    /// that cannot be read or written is computed again.
    pub(crate) fn call(&self, udf: &Udf, rows: Vec<Vec<Value>>) -> Vec<std::result::Result<Value, CellError>> {
        call_remembering(&self.results, &self.session, udf, rows)
    }

    /// Starts keeping the failures of remembered UDFs until [`Registry::end_session`]: a
    /// call that warms up outside the write lock and then writes pays once for a row that
    /// fails, not twice.
    pub(crate) fn begin_session(&self) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(HashMap::new());
    }

    /// Forgets the failures kept since [`Registry::begin_session`].
    pub(crate) fn end_session(&self) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A function calling row UDF `udf` on one row's arguments as [`Registry::call`] does,
    /// to hand to SQLite.
    pub(crate) fn row_caller(
        &self,
        udf: Udf,
    ) -> impl Fn(Vec<Value>) -> std::result::Result<Value, CellError> + Send + Sync + 'static {
        let (results, session) = (self.results.clone(), self.session.clone());
        move |args| {
            if !udf.remembers() {
                return udf.invoke_row(args);
            }
            call_remembering(&results, &session, &udf, vec![args]).pop().unwrap_or(Ok(Value::Null))
        }
    }

    /// Sets the observer of fills' progress (`None`: none).
    pub(crate) fn set_progress(&self, observer: Option<Arc<ProgressFn>>) {
        *self.progress.write().unwrap_or_else(|p| p.into_inner()) = observer;
    }

    /// Tells the observer, if any, how a fill is coming along.
    pub(crate) fn report(&self, progress: &Progress) {
        let observer = self.progress.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(observer) = observer {
            // An observer that panics must not break the fill it watches.
            let _ = catch_unwind(AssertUnwindSafe(|| observer(progress)));
        }
    }

    /// How many of `rows` (arguments of `udf`) would call it: those with no null argument
    /// whose result is not remembered.
    pub(crate) fn calls_needed(&self, udf: &Udf, rows: &[Vec<Value>]) -> u64 {
        let keys: Vec<ArgsKey> = rows.iter().filter(|r| !r.iter().any(Value::is_null)).map(|r| args_key(r)).collect();
        if !udf.remembers() {
            return keys.len() as u64;
        }
        let known = self.results.get(udf.name(), udf.version(), &keys).unwrap_or_default();
        (keys.len() - known.iter().filter(|k| k.is_some()).count()) as u64
    }

    /// Whether `expr` calls a registered UDF that remembers its results.
    pub(crate) fn remembers_any(&self, expr: &Expr) -> bool {
        let mut any = false;
        expr.visit(&mut |e| {
            if let Expr::Udf { name, version, params, returns, .. } = e {
                any |= self.resolve(name, *version, params, *returns).is_ok_and(|u| u.remembers());
            }
        });
        any
    }

    /// The remembered results.
    pub(crate) fn results(&self) -> &Results {
        &self.results
    }
}

/// Failures seen during the running call, by UDF, version and arguments (see
/// [`Registry::begin_session`]); `None` outside one.
type Session = Mutex<Option<HashMap<(String, u32, ArgsKey), CellError>>>;

/// See [`Registry::call`].
fn call_remembering(
    results: &Results,
    session: &Session,
    udf: &Udf,
    rows: Vec<Vec<Value>>,
) -> Vec<std::result::Result<Value, CellError>> {
    if !udf.remembers() {
        return udf.invoke(rows);
    }
    let (name, version) = (udf.name(), udf.version());
    // A row with a null argument is not a call (or is cheap): not remembered.
    let keys: Vec<Option<ArgsKey>> =
        rows.iter().map(|r| (!r.iter().any(Value::is_null)).then(|| args_key(r))).collect();
    let known_keys: Vec<ArgsKey> = keys.iter().flatten().copied().collect();
    let mut known = results.get(name, version, &known_keys).unwrap_or_default().into_iter();
    let failed_before = |key: &ArgsKey| {
        session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|f| f.get(&(name.to_string(), version, *key)).cloned())
    };
    let mut out: Vec<std::result::Result<Value, CellError>> = Vec::with_capacity(rows.len());
    let (mut todo, mut todo_rows) = (Vec::new(), Vec::new());
    for (i, (row, key)) in rows.into_iter().zip(&keys).enumerate() {
        let remembered = key.and_then(|_| known.next().flatten());
        match (remembered, key.as_ref().and_then(failed_before)) {
            (Some(value), _) => out.push(Ok(value)),
            (None, Some(e)) => out.push(Err(e)),
            (None, None) => {
                out.push(Ok(Value::Null));
                todo.push(i);
                todo_rows.push(row);
            }
        }
    }
    if todo.is_empty() {
        return out;
    }
    let remember = |j: usize, r: &std::result::Result<Value, CellError>| {
        let Some(key) = keys[todo[j]] else { return };
        match r {
            // A result that cannot be kept is computed again next time.
            Ok(value) => drop(results.put(name, version, &key, value)),
            // Failures are kept only for the call that is running (its paid warm-up, then
            // its write): the next call tries them again.
            Err(e) => {
                if let Some(failed) = session.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    failed.insert((name.to_string(), version, key), e.clone());
                }
            }
        }
    };
    for (j, r) in udf.invoke_observed(todo_rows, &remember).into_iter().enumerate() {
        out[todo[j]] = r;
    }
    out
}

impl Registry {
    pub(crate) fn register(&self, udf: Udf) {
        let mut map = self.udfs.write().unwrap_or_else(|p| p.into_inner());
        map.insert((udf.inner.name.clone(), udf.version()), udf);
    }

    /// The registered versions of `name`, in order.
    fn versions(&self, name: &str) -> Vec<u32> {
        let map = self.udfs.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<u32> = map.keys().filter(|(n, _)| n == name).map(|(_, v)| *v).collect();
        out.sort_unstable();
        out
    }

    /// The registered UDF for a call in `expr` named (name, version) with this signature,
    /// or an error naming what is stored and what is registered.
    pub(crate) fn resolve(&self, name: &str, version: u32, params: &[ColumnType], returns: ColumnType) -> Result<Udf> {
        let found = self.udfs.read().unwrap_or_else(|p| p.into_inner()).get(&(name.to_string(), version)).cloned();
        let Some(udf) = found else {
            let others = self.versions(name);
            if others.is_empty() {
                return Err(err!(
                    UdfNotRegistered,
                    "UDF {name}@{version} is not registered on this catalog handle (call catalog.register(..) with it first)"
                ));
            }
            let listed: Vec<String> = others.iter().map(|v| format!("{name}@{v}")).collect();
            return Err(err!(
                UdfVersionMismatch,
                "needs UDF {name}@{version}, but only {} is registered; register version {version} too, or replace the column to recompute it with another version",
                listed.join(", ")
            ));
        };
        if udf.params() != params || udf.returns() != returns {
            return Err(err!(
                UdfVersionMismatch,
                "UDF {name}@{version} is registered with another signature ({} -> {}) than stored ({} -> {returns}); a changed UDF needs a new version",
                type_list(udf.params()),
                udf.returns(),
                type_list(params)
            ));
        }
        Ok(udf)
    }

    /// Checks every UDF call in `expr`.
    pub(crate) fn check_expr(&self, expr: &Expr) -> Result<()> {
        let mut result = Ok(());
        expr.visit(&mut |e| {
            if let (Expr::Udf { name, version, params, returns, .. }, Ok(())) = (e, &result) {
                result = self.resolve(name, *version, params, *returns).map(|_| ());
            }
        });
        result
    }

    /// Checks every UDF the computed columns of `schema` call; the error names the column.
    pub(crate) fn check_schema(&self, schema: &TableSchema) -> Result<()> {
        for c in &schema.columns {
            if let Some(comp) = &c.computed {
                self.check_expr(&comp.expr).map_err(|e| e.context(format_args!("computed column '{}'", c.name)))?;
            }
        }
        Ok(())
    }
}

fn type_list(types: &[ColumnType]) -> String {
    format!("({})", types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_udfs_skip_nulls_and_catch_panics() {
        let f = Udf::new("f", 1, |n: i64| -> std::result::Result<i64, String> {
            if n < 0 {
                return Err("negative".into());
            }
            if n == 13 {
                panic!("unlucky");
            }
            Ok(n * 2)
        });
        assert_eq!((f.params(), f.returns()), (&[ColumnType::Int][..], ColumnType::Int));
        let out = f.invoke(vec![vec![Value::Int(2)], vec![Value::Null], vec![Value::Int(-1)], vec![Value::Int(13)]]);
        assert_eq!(out[0], Ok(Value::Int(4)));
        assert_eq!(out[1], Ok(Value::Null));
        assert_eq!(out[2], Err(CellError::new(CellErrorKind::UdfError, "negative")));
        assert_eq!(out[3], Err(CellError::new(CellErrorKind::UdfPanic, "panicked: unlucky")));
        let g = Udf::new("g", 1, |a: Option<String>, b: i64| a.map(|a| a.len() as i64 + b).unwrap_or(-1));
        assert_eq!(g.invoke(vec![vec![Value::Null, Value::Int(1)]]), vec![Ok(Value::Int(-1))]);
    }

    #[test]
    fn untyped_results_are_type_checked_and_batches_sized() {
        let bad = Udf::row("bad", 1, [ColumnType::Int], ColumnType::Int, |_| Ok(Value::from("x")));
        let out = bad.invoke(vec![vec![Value::Int(1)]]);
        assert_eq!(
            out[0],
            Err(CellError::new(CellErrorKind::UdfTypeError, "bad@1 returned String, but it is declared to return Int"))
        );
        let short = Udf::batch("short", 1, [ColumnType::Int], ColumnType::Int, |_| vec![]);
        let out = short.invoke(vec![vec![Value::Int(1)], vec![Value::Null]]);
        assert_eq!(out[0].as_ref().unwrap_err().kind, CellErrorKind::UdfBatchError);
        assert_eq!(out[1], Ok(Value::Null));
    }
}

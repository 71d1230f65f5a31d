//! `rollgate get NAME` and `rollgate list`: Rollouts as a table of the CRD's own printer
//! columns (what `kubectl get rollouts` shows), `-o wide` with more columns, `-o name`, or
//! whole objects as YAML or JSON; `-l` selects by label, `-A` spans every namespace and `-w`
//! prints a row again on every change.

use std::collections::BTreeMap;
use std::io::Write;

use clap::{Args, ValueEnum};
use futures_util::TryStreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt};
use rollgate::api::Rollout;
use serde_json::{Value, json};

use super::kube_client::{KubeArgs, OpsError, Target};
use super::table;

/// `-o` of `get` and `list`, as kubectl spells it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    /// The whole object as YAML (without managedFields); several as a `List`.
    Yaml,
    /// The whole object as JSON (without managedFields); several as a `List`.
    Json,
    /// The table with more columns: the target, the stages' percents, the next checkpoint.
    Wide,
    /// `rollout.rollgate.dev/NAME`, one a line.
    Name,
}

/// `rollgate get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The Rollout's name.
    #[arg(add = super::complete::rollout_names())]
    pub name: String,
    #[command(flatten)]
    pub listing: ListingArgs,
}

/// `rollgate list`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub listing: ListingArgs,
}

/// What `get` and `list` share.
#[derive(Args, Debug, Clone)]
pub struct ListingArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Look in every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Only Rollouts whose labels match this selector (`app=checkout,tier!=web`, `env in (a,b)`).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// The output format (default: the printer-column table).
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<ObjectFormat>,
    /// After printing, watch: print a row (or the object) again on every change, until Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// Which Rollouts to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The namespace, or all.
    pub scope: Scope,
    /// Only the Rollout of this name (`get`).
    pub name: Option<String>,
    /// A label selector.
    pub selector: Option<String>,
}

impl Query {
    fn list_params(&self) -> ListParams {
        let mut params = ListParams::default();
        if let Some(name) = &self.name {
            params = params.fields(&format!("metadata.name={name}"));
        }
        if let Some(selector) = &self.selector {
            params = params.labels(selector);
        }
        params
    }

    fn api(&self, client: &Client) -> Api<Rollout> {
        match &self.scope {
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
            Scope::All => Api::all(client.clone()),
        }
    }

    fn with_namespace(&self) -> bool {
        self.scope == Scope::All
    }
}

/// Which Rollouts `list` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace (a NAMESPACE column is added).
    All,
}

/// Prints one Rollout: the printer-column table, its name, or the object as YAML or JSON;
/// returns it.
pub async fn get(
    client: &Client,
    target: &Target,
    format: Option<ObjectFormat>,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<Rollout, OpsError> {
    let rollout = target.get(client).await?;
    let text = render(
        std::slice::from_ref(&rollout),
        format,
        false,
        now,
        Many::One,
    )?;
    out.write_all(text.as_bytes())?;
    Ok(rollout)
}

/// Prints the Rollouts `query` selects in `format`; returns what was printed (for `-w`).
pub async fn list_matching(
    client: &Client,
    query: &Query,
    format: Option<ObjectFormat>,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<Vec<Rollout>, OpsError> {
    let listed = query
        .api(client)
        .list(&query.list_params())
        .await
        .map_err(OpsError::Api)?;
    let as_list = matches!(format, Some(ObjectFormat::Json | ObjectFormat::Yaml));
    if listed.items.is_empty() && !as_list {
        if let Some(name) = &query.name {
            return Err(OpsError::NotFound {
                namespace: match &query.scope {
                    Scope::Namespace(ns) => ns.clone(),
                    Scope::All => "*".to_owned(),
                },
                name: name.clone(),
            });
        }
        match &query.scope {
            Scope::Namespace(ns) => writeln!(out, "No rollouts found in namespace {ns}.")?,
            Scope::All => writeln!(out, "No rollouts found.")?,
        }
        return Ok(listed.items);
    }
    let text = render(
        &listed.items,
        format,
        query.with_namespace(),
        now,
        Many::List,
    )?;
    out.write_all(text.as_bytes())?;
    Ok(listed.items)
}

/// Whether JSON and YAML print one object or a `List` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Many {
    One,
    List,
}

/// Rollouts in a format: table (with a header), wide table, names, or objects.
fn render(
    rollouts: &[Rollout],
    format: Option<ObjectFormat>,
    with_namespace: bool,
    now: Timestamp,
    many: Many,
) -> Result<String, OpsError> {
    let bare: Vec<Rollout> = rollouts
        .iter()
        .cloned()
        .map(|mut r| {
            r.metadata.managed_fields = None;
            r
        })
        .collect();
    let object = || -> Result<Value, OpsError> {
        match (many, bare.as_slice()) {
            (Many::One, [one]) => serde_json::to_value(one),
            _ => serde_json::to_value(&bare).map(|items| {
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                       "items": items})
            }),
        }
        .map_err(|e| OpsError::Output(std::io::Error::other(e)))
    };
    Ok(match format {
        None => columns(&bare, with_namespace, false, now),
        Some(ObjectFormat::Wide) => columns(&bare, with_namespace, true, now),
        Some(ObjectFormat::Name) => bare.iter().map(|r| format!("{}\n", name_of(r))).collect(),
        Some(ObjectFormat::Json) => {
            let mut text = serde_json::to_string_pretty(&object()?)
                .map_err(|e| OpsError::Output(std::io::Error::other(e)))?;
            text.push('\n');
            text
        }
        Some(ObjectFormat::Yaml) => serde_saphyr::to_string(&object()?)
            .map_err(|e| OpsError::Output(std::io::Error::other(e)))?,
    })
}

/// `rollout.rollgate.dev/NAME`, as `kubectl get -o name` prints it.
fn name_of(rollout: &Rollout) -> String {
    format!(
        "rollout.rollgate.dev/{}",
        rollout.metadata.name.as_deref().unwrap_or_default()
    )
}

/// After the first print: watches the Rollouts `query` selects and prints each change (a
/// row without the header, a name, or the object), until Ctrl-C. A dropped watch is resumed
/// (kube-runtime's watcher, with its backoff; a relist prints only what changed).
pub async fn watch(
    client: &Client,
    query: &Query,
    format: Option<ObjectFormat>,
    printed: Vec<Rollout>,
    now: &(dyn Fn() -> Timestamp + Send + Sync),
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let mut seen: BTreeMap<(String, String), String> = printed.iter().map(seen_entry).collect();
    let mut config = watcher::Config::default();
    if let Some(name) = &query.name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    if let Some(selector) = &query.selector {
        config = config.labels(selector);
    }
    let mut events = Box::pin(watcher(query.api(client), config).default_backoff());
    while let Some(event) = events.try_next().await.map_err(|e| match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
            OpsError::Api(e)
        }
        other => OpsError::Api(kube::Error::Service(Box::new(other))),
    })? {
        let changed = match event {
            watcher::Event::Apply(rollout) | watcher::Event::InitApply(rollout) => {
                let (key, version) = seen_entry(&rollout);
                if seen.get(&key) == Some(&version) {
                    continue;
                }
                seen.insert(key, version);
                rollout
            }
            watcher::Event::Delete(rollout) => {
                seen.remove(&seen_entry(&rollout).0);
                rollout
            }
            watcher::Event::Init | watcher::Event::InitDone => continue,
        };
        let mut text = render(
            std::slice::from_ref(&changed),
            format,
            query.with_namespace(),
            now(),
            Many::One,
        )?;
        if format.is_none() || format == Some(ObjectFormat::Wide) {
            // The row only: the header was printed with the first table.
            text = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        } else if format == Some(ObjectFormat::Yaml) {
            text.insert_str(0, "---\n");
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

fn seen_entry(rollout: &Rollout) -> ((String, String), String) {
    (
        (
            rollout.metadata.namespace.clone().unwrap_or_default(),
            rollout.metadata.name.clone().unwrap_or_default(),
        ),
        rollout
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
    )
}

/// The CRD's printer columns (Phase, Stage, Percent, Age, Message).
fn printer_columns() -> Vec<CustomResourceColumnDefinition> {
    Rollout::crd()
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.additional_printer_columns)
        .unwrap_or_default()
}

/// NAME (and NAMESPACE first when asked), then every printer column (those of priority 0
/// unless `wide`); `wide` adds TARGET, STAGES and NEXT-CHECKPOINT.
fn columns(rollouts: &[Rollout], with_namespace: bool, wide: bool, now: Timestamp) -> String {
    let definitions: Vec<CustomResourceColumnDefinition> = printer_columns()
        .into_iter()
        .filter(|c| wide || c.priority.unwrap_or(0) == 0)
        .collect();
    let mut header = Vec::new();
    if with_namespace {
        header.push("NAMESPACE".to_owned());
    }
    header.push("NAME".to_owned());
    header.extend(definitions.iter().map(|c| c.name.to_uppercase()));
    if wide {
        header.extend(["TARGET", "STAGES", "NEXT-CHECKPOINT"].map(str::to_owned));
    }
    let mut rows = vec![header];
    for rollout in rollouts {
        let object = serde_json::to_value(rollout).unwrap_or(Value::Null);
        let mut row = Vec::new();
        if with_namespace {
            row.push(rollout.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(rollout.metadata.name.clone().unwrap_or_default());
        for column in &definitions {
            row.push(cell(&object, column, now));
        }
        if wide {
            row.extend(wide_cells(&object));
        }
        rows.push(row);
    }
    table::render(&rows, "")
}

/// TARGET (`flagd feature-flags/my_flag`, `configMap rollout/percent`, `webhook`), STAGES
/// (`1,5,10`) and NEXT-CHECKPOINT, read from the object's JSON.
fn wide_cells(object: &Value) -> [String; 3] {
    let target = object["spec"]["target"]
        .as_object()
        .and_then(|t| t.iter().find(|(_, v)| !v.is_null()))
        .map_or_else(
            || "<none>".to_owned(),
            |(kind, value)| {
                let part = |key: &str| value.get(key).and_then(Value::as_str);
                let place = part("configMap")
                    .or(part("featureFlag"))
                    .or(part("name"))
                    .map(str::to_owned);
                let key = part("flag").or(part("key"));
                match (place, key) {
                    (Some(place), Some(key)) => format!("{kind} {place}/{key}"),
                    (Some(place), None) => format!("{kind} {place}"),
                    _ => kind.clone(),
                }
            },
        );
    let stages = object["spec"]["stages"].as_array().map_or_else(
        || "<none>".to_owned(),
        |stages| {
            stages
                .iter()
                .map(|s| s["percent"].to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    let next = object["status"]["nextCheckpointAt"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned();
    [target, stages, next]
}

/// One cell: the value at the column's simple JSON path (`.status.phase`), `<none>` when
/// absent, an age for a `date` column.
fn cell(object: &Value, column: &CustomResourceColumnDefinition, now: Timestamp) -> String {
    let value = column
        .json_path
        .split('.')
        .filter(|part| !part.is_empty())
        .try_fold(object, |node, part| node.get(part));
    match value {
        None | Some(Value::Null) => "<none>".to_owned(),
        Some(Value::String(text)) if column.type_ == "date" => {
            text.parse::<Timestamp>().map_or_else(
                |_| text.clone(),
                |t| table::age(now.as_second() - t.as_second()),
            )
        }
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// `rollgate get` on the command line.
pub fn run_get(args: GetArgs) -> std::process::ExitCode {
    run_listing("get", Some(args.name), args.listing)
}

/// `rollgate list` on the command line.
pub fn run_list(args: ListArgs) -> std::process::ExitCode {
    run_listing("list", None, args.listing)
}

fn run_listing(command: &str, name: Option<String>, args: ListingArgs) -> std::process::ExitCode {
    super::kube_client::run_command(command, || async move {
        let client = args.kube.connect().await?;
        let scope = if args.all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(client.default_namespace().to_owned())
        };
        let query = Query {
            scope,
            name,
            selector: args.selector,
        };
        let mut stdout = std::io::stdout().lock();
        // One named Rollout in one namespace: read it (404 is "not found", exit 2), and print
        // it alone (JSON and YAML as the object, not a List).
        let printed = match (&query.name, &query.scope, &query.selector) {
            (Some(name), Scope::Namespace(ns), None) => {
                let target = Target {
                    namespace: ns.clone(),
                    name: name.clone(),
                };
                vec![get(&client, &target, args.output, Timestamp::now(), &mut stdout).await?]
            }
            _ => list_matching(&client, &query, args.output, Timestamp::now(), &mut stdout).await?,
        };
        stdout.flush()?;
        if args.watch {
            watch(
                &client,
                &query,
                args.output,
                printed,
                &Timestamp::now,
                &mut stdout,
            )
            .await?;
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

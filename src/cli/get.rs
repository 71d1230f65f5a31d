//! `rollgate get NAME [-o yaml|json]` and `rollgate list [-n NS | -A]`: Rollouts as a table
//! of the CRD's own printer columns (what `kubectl get rollouts` shows), or one whole object.

use std::io::Write;

use clap::{Args, ValueEnum};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, CustomResourceExt};
use rollgate::api::Rollout;
use serde_json::Value;

use super::kube_client::{NamespaceArg, OpsError, Target};
use super::table;

/// `-o` of `get`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    /// The whole object as YAML (without managedFields).
    Yaml,
    /// The whole object as JSON (without managedFields).
    Json,
}

/// `rollgate get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The Rollout's name.
    pub name: String,
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// Print the whole object instead of the table.
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<ObjectFormat>,
}

/// `rollgate list`.
#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// List the Rollouts of every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

/// Which Rollouts `list` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace (a NAMESPACE column is added).
    All,
}

/// Prints one Rollout: the printer-column table, or the object as YAML or JSON.
pub async fn get(
    client: &Client,
    target: &Target,
    format: Option<ObjectFormat>,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let mut rollout = target.get(client).await?;
    rollout.metadata.managed_fields = None;
    match format {
        None => out.write_all(columns(&[rollout], false, now).as_bytes())?,
        Some(ObjectFormat::Json) => {
            let text = serde_json::to_string_pretty(&rollout).map_err(std::io::Error::other)?;
            writeln!(out, "{text}")?;
        }
        Some(ObjectFormat::Yaml) => {
            let text = serde_saphyr::to_string(&rollout).map_err(std::io::Error::other)?;
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

/// Prints the Rollouts of a namespace, or of all, as the printer-column table.
pub async fn list(
    client: &Client,
    scope: &Scope,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let api: Api<Rollout> = match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    };
    let listed = api
        .list(&ListParams::default())
        .await
        .map_err(OpsError::Api)?;
    if listed.items.is_empty() {
        match scope {
            Scope::Namespace(ns) => writeln!(out, "No rollouts found in namespace {ns}.")?,
            Scope::All => writeln!(out, "No rollouts found.")?,
        }
        return Ok(());
    }
    out.write_all(columns(&listed.items, *scope == Scope::All, now).as_bytes())?;
    Ok(())
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

/// NAME (and NAMESPACE first when asked), then every printer column.
fn columns(rollouts: &[Rollout], with_namespace: bool, now: Timestamp) -> String {
    let definitions = printer_columns();
    let mut header = Vec::new();
    if with_namespace {
        header.push("NAMESPACE".to_owned());
    }
    header.push("NAME".to_owned());
    header.extend(definitions.iter().map(|c| c.name.to_uppercase()));
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
        rows.push(row);
    }
    table::render(&rows, "")
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
    super::kube_client::run_command("get", || async move {
        let client = super::kube_client::connect().await?;
        let target = Target::new(&client, args.namespace.namespace.as_deref(), &args.name);
        get(
            &client,
            &target,
            args.output,
            Timestamp::now(),
            &mut std::io::stdout().lock(),
        )
        .await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// `rollgate list` on the command line.
pub fn run_list(args: ListArgs) -> std::process::ExitCode {
    super::kube_client::run_command("list", || async move {
        let client = super::kube_client::connect().await?;
        let scope = match (args.all_namespaces, args.namespace.namespace) {
            (true, _) => Scope::All,
            (false, Some(ns)) => Scope::Namespace(ns),
            (false, None) => Scope::Namespace(client.default_namespace().to_owned()),
        };
        list(
            &client,
            &scope,
            Timestamp::now(),
            &mut std::io::stdout().lock(),
        )
        .await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

//! The SAM template (`infra/template.yaml`) against the code it deploys: every function is a
//! crate of the workspace, every environment variable the code reads is set (and none that
//! it does not read), IAM names actions and resources (no `*` except where AWS accepts
//! nothing else), and the table is the one the DynamoDB adapter expects. The API calls in
//! `infra/README.md` are operations of `functions/api/openapi.json`, with bodies it accepts.
//!
//! `cfn-lint` and `sam validate` (run by `infra/check`) check the template against
//! CloudFormation and SAM; these tests check it against this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use yaml_serde::{Mapping, Value};

// ---------------------------------------------------------------------------------------------
// Exceptions, each with its reason. Keep these short: every entry is something the template
// deliberately does not do.
// ---------------------------------------------------------------------------------------------

/// Variables the code reads that the template leaves unset on purpose.
const NOT_SET_IN_AWS: &[(&str, &str)] = &[
    (
        "SEATKEEPER_BOX_API_URL",
        "provider URL override for tests and local runs; unset means https://api.box.com (design §9)",
    ),
    (
        "SEATKEEPER_BOX_AUTHORIZE_URL",
        "provider URL override for tests and local runs (design §9)",
    ),
    (
        "SEATKEEPER_SALESFORCE_LOGIN_URL",
        "provider URL override for tests and local runs (design §9)",
    ),
    ("SEATKEEPER_DATA_DIR", "CLI only: the local data directory"),
    (
        "SEATKEEPER_LOCAL_TOKEN",
        "CLI only: the bearer token of `seatkeeper serve`",
    ),
    (
        "AWS_ENDPOINT_URL",
        "local AWS emulator only; in AWS the SDK uses the real endpoints",
    ),
];

/// Variables Lambda itself sets in every function's environment.
const SET_BY_LAMBDA: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
];
const SET_BY_LAMBDA_PREFIX: &str = "AWS_LAMBDA_";

/// Actions for which AWS offers no resource-level permission: `Resource: "*"` is the only
/// way to grant them.
const RESOURCE_STAR_ONLY: &[&str] = &[
    // Lambda active tracing (Tracing: Active) sends segments with the function's role.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
    // Answering a `.waitForTaskToken` wait: the task token names the wait, and IAM accepts
    // no resource for these actions (Service Authorization Reference, AWS Step Functions).
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
];

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_function_in_the_template_is_a_function_crate_of_the_workspace() {
    let template = Template::load();
    let members = workspace_members();
    let mut deployed = BTreeSet::new();
    for (id, function) in template.functions() {
        let id = id.as_str();
        let props = &function["Properties"];
        let code_uri = props["CodeUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: CodeUri must be a plain path to the crate"));
        let dir = normalise(&repo_root().join("infra").join(code_uri));
        let relative = dir
            .strip_prefix(repo_root())
            .unwrap_or_else(|_| panic!("{id}: CodeUri {code_uri} points outside the repository"))
            .to_string_lossy()
            .replace('\\', "/");
        assert!(
            relative.starts_with("functions/"),
            "{id}: CodeUri {code_uri} is not a crate under functions/"
        );
        assert!(
            members.contains(&relative),
            "{id}: {relative} is not a member of the workspace ({members:?})"
        );
        let manifest = Manifest::read(&dir.join("Cargo.toml"));

        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}: Metadata.BuildMethod"
        );
        let binary = function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or(&manifest.package);
        assert!(
            manifest.binaries().iter().any(|b| b == binary),
            "{id}: {relative} builds no binary named {binary} (it builds {:?})",
            manifest.binaries()
        );
        assert_eq!(
            template.function_setting(id, "Runtime").as_str(),
            Some("provided.al2023"),
            "{id}: Runtime"
        );
        assert_eq!(
            template.function_setting(id, "Handler").as_str(),
            Some("bootstrap"),
            "{id}: Handler"
        );
        deployed.insert(relative);
    }

    // And the other way round: a function crate that is not deployed is a forgotten one.
    let crates: BTreeSet<String> = members
        .into_iter()
        .filter(|m| m.starts_with("functions/"))
        .collect();
    assert_eq!(
        deployed, crates,
        "every crate under functions/ is deployed by exactly the template's functions"
    );
}

#[test]
fn every_environment_variable_the_code_reads_is_set_in_the_template() {
    let template = Template::load();
    let shared = env_vars_read_in(&repo_root().join("shared/src"));
    assert!(
        shared.contains("RUST_LOG"),
        "the scan of shared/src should find RUST_LOG (logging.rs): is the scanner broken?"
    );
    let exceptions: BTreeMap<&str, &str> = NOT_SET_IN_AWS.iter().copied().collect();

    for (id, function) in template.functions() {
        let id = id.as_str();
        let crate_dir = crate_dir(id, function);
        let own = env_vars_read_in(&crate_dir.join("src"));
        let set = template.environment(id);

        // Shared code runs in every function, so what it reads is needed everywhere.
        let needed: BTreeSet<&String> = own
            .iter()
            .chain(&shared)
            .filter(|name| !exceptions.contains_key(name.as_str()) && !set_by_lambda(name))
            .collect();
        let missing: Vec<&&String> = needed.iter().filter(|n| !set.contains_key(**n)).collect();
        assert!(
            missing.is_empty(),
            "{id} reads {missing:?} but the template does not set them (it sets {:?}); set \
             them, or add an exception with its reason to NOT_SET_IN_AWS",
            set.keys().collect::<Vec<_>>()
        );

        // A variable set but never read is a typo or a leftover.
        let unread: Vec<&String> = set
            .keys()
            .filter(|name| !own.contains(*name) && !shared.contains(*name))
            .collect();
        assert!(
            unread.is_empty(),
            "{id}: the template sets {unread:?}, which neither {} nor shared/src reads",
            crate_dir.display()
        );
    }
}

#[test]
fn iam_names_its_actions_and_resources() {
    let template = Template::load();
    let mut checked = 0;
    for (id, resource) in template.resources() {
        let kind = resource["Type"].as_str().unwrap_or_default();
        let props = &resource["Properties"];
        match kind {
            "AWS::Serverless::Function" | "AWS::Serverless::StateMachine" => {
                // SAM policy templates and managed policies cannot be checked here, and the
                // roles SAM generates grant log writes on every log group.
                assert!(
                    props.get("Role").is_some() && props.get("Policies").is_none(),
                    "{id}: give it an explicit Role (an AWS::IAM::Role in the template), not \
                     SAM Policies"
                );
            }
            "AWS::IAM::Role" => {
                assert!(
                    props.get("ManagedPolicyArns").is_none(),
                    "{id}: managed policies cannot be checked; write the statements inline"
                );
                for policy in props["Policies"].as_sequence().into_iter().flatten() {
                    check_policy_document(id, &policy["PolicyDocument"]);
                    checked += 1;
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                check_policy_document(id, &props["PolicyDocument"]);
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked > 0, "no IAM policy found in the template");
}

#[test]
fn every_function_can_write_its_logs_and_traces() {
    let template = Template::load();
    for (id, function) in template.functions() {
        let id = id.as_str();
        let props = &function["Properties"];
        let role = props["Role"]
            .as_get_att()
            .map(|(resource, _)| resource)
            .unwrap_or_else(|| panic!("{id}: Role should be !GetAtt <Role>.Arn"));
        let statements = template.role_statements(&role);

        let log_group = props["LoggingConfig"]["LogGroup"]
            .as_ref_target()
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup should be !Ref <LogGroup>"));
        let log_group_resource = &template.resources()[log_group.as_str()];
        assert_eq!(
            log_group_resource["Type"].as_str(),
            Some("AWS::Logs::LogGroup"),
            "{id}: LoggingConfig.LogGroup"
        );
        assert!(
            log_group_resource["Properties"]
                .get("RetentionInDays")
                .is_some(),
            "{id}: its log group has no retention"
        );
        let writes_logs = statements.iter().any(|s| {
            allows(s, "logs:CreateLogStream")
                && allows(s, "logs:PutLogEvents")
                && s["Resource"].as_get_att() == Some((log_group.clone(), "Arn".into()))
        });
        assert!(
            writes_logs,
            "{id}: its role cannot write to its own log group {log_group}"
        );

        assert_eq!(
            template.function_setting(id, "Tracing").as_str(),
            Some("Active"),
            "{id}: X-Ray tracing"
        );
        for action in ["xray:PutTraceSegments", "xray:PutTelemetryRecords"] {
            assert!(
                statements.iter().any(|s| allows(s, action)),
                "{id}: active tracing needs {action} on its role"
            );
        }
    }
}

#[test]
fn license_sync_invokes_itself_by_the_name_it_is_given() {
    let template = Template::load();
    let (id, function) = template
        .functions()
        .into_iter()
        .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some("../functions/license-sync"))
        .expect("the template deploys functions/license-sync");
    let props = &function["Properties"];
    let name = props["FunctionName"]
        .as_sub()
        .unwrap_or_else(|| panic!("{id}: FunctionName should be an explicit !Sub string"));
    let environment = template.environment(&id);
    assert_eq!(
        environment
            .get("SEATKEEPER_SYNC_FUNCTION")
            .and_then(Value::as_sub),
        Some(name.clone()),
        "{id}: SEATKEEPER_SYNC_FUNCTION names the function itself"
    );

    let role = props["Role"].as_get_att().expect("explicit role").0;
    let invoke: Vec<String> = template
        .role_statements(&role)
        .iter()
        .filter(|s| allows(s, "lambda:InvokeFunction"))
        .flat_map(resources_of)
        .map(|r| r.as_sub().unwrap_or_else(|| format!("{r:?}")))
        .collect();
    assert_eq!(
        invoke,
        vec![format!(
            "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{name}"
        )],
        "{id}: may invoke itself and nothing else"
    );

    // 15 minutes: the sync keeps a 60 s margin before the deadline to hand over.
    assert_eq!(props["Timeout"].as_u64(), Some(900), "{id}: Timeout");
    let retries = props["EventInvokeConfig"]["MaximumRetryAttempts"].as_u64();
    assert!(
        matches!(retries, Some(0 | 1)),
        "{id}: at most one retry of an asynchronous sync, got {retries:?}"
    );
}

#[test]
fn license_sync_runs_on_a_schedule_and_its_failures_raise_an_alarm() {
    let template = Template::load();
    let (id, function) = template
        .functions()
        .into_iter()
        .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some("../functions/license-sync"))
        .expect("the template deploys functions/license-sync");

    let schedules: Vec<&Value> = function["Properties"]["Events"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(_, event)| event)
        .filter(|event| event["Type"].as_str() == Some("Schedule"))
        .collect();
    assert_eq!(schedules.len(), 1, "{id}: one schedule");
    let parameter = schedules[0]["Properties"]["Schedule"]
        .as_ref_target()
        .expect("the schedule is a parameter");
    assert_eq!(
        template.root["Parameters"][parameter.as_str()]["Default"].as_str(),
        Some("rate(1 day)"),
        "every 24 hours by default"
    );

    let topic_alarms: Vec<&Value> = template
        .resources()
        .into_values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .filter(|r| r["Properties"]["MetricName"].as_str() == Some("Errors"))
        .filter(|r| {
            r["Properties"]["Dimensions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|d| d["Value"].as_ref_target().as_deref() == Some(id.as_str()))
        })
        .collect();
    assert_eq!(topic_alarms.len(), 1, "{id}: one alarm on its Errors");
    let actions = topic_alarms[0]["Properties"]["AlarmActions"]
        .as_sequence()
        .expect("AlarmActions");
    let topic = actions[0].as_ref_target().expect("!Ref <topic>");
    assert_eq!(
        template.resources()[topic.as_str()]["Type"].as_str(),
        Some("AWS::SNS::Topic"),
        "the alarm notifies the SNS topic"
    );
    assert!(
        template.root["Parameters"]
            .get("NotificationEmail")
            .is_some(),
        "the topic's e-mail subscriber is a parameter"
    );
}

#[test]
fn log_metric_filters_match_lines_the_code_logs_and_raise_alarms() {
    // A filter on a message nobody logs any more would keep its alarm silent for ever.
    let template = Template::load();
    let mut sources = String::new();
    for dir in ["functions", "shared/src"] {
        for file in rust_files(&repo_root().join(dir)) {
            sources.push_str(&std::fs::read_to_string(&file).expect("source file"));
        }
    }
    let resources = template.resources();
    let filters: Vec<(&str, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::MetricFilter"))
        .map(|(id, r)| (*id, *r))
        .collect();
    assert!(
        !filters.is_empty(),
        "sync failures are counted from the logs"
    );

    for (id, filter) in filters {
        let pattern = text(&filter["Properties"]["FilterPattern"]);
        for (field, allowed) in [
            ("$.fields.message = \"", None),
            (
                "$.level = \"",
                Some(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]),
            ),
        ] {
            for (at, _) in pattern.match_indices(field) {
                let rest = &pattern[at + field.len()..];
                let value = &rest[..rest.find('"').expect("closing quote")];
                match allowed {
                    Some(levels) => assert!(
                        levels.contains(&value),
                        "{id}: tracing writes levels as {levels:?}, not {value:?}"
                    ),
                    None => assert!(
                        sources.contains(&format!("\"{value}\"")),
                        "{id}: no code logs the message {value:?}"
                    ),
                }
            }
        }

        let transformation = &filter["Properties"]["MetricTransformations"][0];
        let metric = text(&transformation["MetricName"]);
        let alarmed = resources.values().any(|r| {
            r["Type"].as_str() == Some("AWS::CloudWatch::Alarm")
                && r["Properties"]["MetricName"].as_str() == Some(metric.as_str())
                && r["Properties"]["Namespace"] == transformation["MetricNamespace"]
                && r["Properties"]["AlarmActions"]
                    .as_sequence()
                    .is_some_and(|actions| !actions.is_empty())
        });
        assert!(alarmed, "{id}: no alarm notifies anyone of {metric}");
    }
}

#[test]
fn the_table_is_the_one_the_dynamodb_adapter_uses() {
    // shared/src/store/dynamo.rs: `pk`/`sk` strings, GSIs gsi1, gsi2 and gsi3 on
    // (gsi1pk, gsi1sk), (gsi2pk, gsi2sk) and (gsi3pk, gsi3sk), TTL attribute `ttl`.
    let template = Template::load();
    let tables: Vec<(&str, &Value)> = template
        .resources()
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .collect();
    assert_eq!(tables.len(), 1, "one table (design §4)");
    let (id, table) = tables[0];
    let props = &table["Properties"];

    assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(props["DeletionProtectionEnabled"].as_bool(), Some(true));
    assert_eq!(
        props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    assert_eq!(table["UpdateReplacePolicy"].as_str(), Some("Retain"));
    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("ttl")
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(key_schema(&props["KeySchema"]), ("pk".into(), "sk".into()));

    let attributes: BTreeMap<String, String> = props["AttributeDefinitions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|a| (text(&a["AttributeName"]), text(&a["AttributeType"])))
        .collect();
    for name in [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk",
    ] {
        assert_eq!(
            attributes.get(name).map(String::as_str),
            Some("S"),
            "{id}: {name} is a string attribute"
        );
    }
    let indexes: BTreeMap<String, (String, String)> = props["GlobalSecondaryIndexes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|i| {
            assert_eq!(
                i["Projection"]["ProjectionType"].as_str(),
                Some("ALL"),
                "{id}: index projection"
            );
            (text(&i["IndexName"]), key_schema(&i["KeySchema"]))
        })
        .collect();
    assert_eq!(
        indexes,
        BTreeMap::from([
            ("gsi1".into(), ("gsi1pk".into(), "gsi1sk".into())),
            ("gsi2".into(), ("gsi2pk".into(), "gsi2sk".into())),
            ("gsi3".into(), ("gsi3pk".into(), "gsi3sk".into())),
        ])
    );
}

#[test]
fn the_readme_connect_requests_are_bodies_the_api_accepts() {
    // infra/README.md, "Connect the first integration": `connect.json` plus the secret that jq
    // adds from the environment is the body of `POST /integrations`, and `oauth.json` the body
    // of `POST /integrations/oauth`; both must satisfy the document's request schemas.
    let readme = std::fs::read_to_string(repo_root().join("infra/README.md")).expect("README");
    let doc: serde_json::Value =
        serde_json::from_str(seatkeeper_api::OPENAPI_JSON).expect("openapi.json is JSON");

    let connect_schema = request_schema(&doc, "/integrations", "post");
    let mut connect = json_block_after(&readme, "`connect.json` is the body");
    assert!(
        connect.get("client_secret").is_none(),
        "connect.json must not hold the secret: jq adds it from the environment"
    );
    let refused = schema_errors(&doc, connect_schema, &connect);
    assert!(
        refused.iter().any(|e| e.contains("client_secret")),
        "without the secret the body must be refused, got {refused:?}"
    );
    connect["client_secret"] = "a secret from the environment".into();
    let errors = schema_errors(&doc, connect_schema, &connect);
    assert!(errors.is_empty(), "connect.json + secret: {errors:?}");

    let oauth = json_block_after(&readme, "`oauth.json`, a new connect");
    let errors = schema_errors(
        &doc,
        request_schema(&doc, "/integrations/oauth", "post"),
        &oauth,
    );
    assert!(errors.is_empty(), "oauth.json: {errors:?}");

    // The secret reaches the body from the environment, and the body reaches awscurl on stdin.
    let connect_command = commands(&readme)
        .into_iter()
        .find(|c| c.contains("\"$API_URL/integrations\""))
        .expect("the awscurl call of POST /integrations");
    for piece in [
        "jq '. + {client_secret: env.BOX_CLIENT_SECRET}' connect.json |",
        "-X POST",
        "-H 'content-type: application/json'",
        "-d @- \"$API_URL/integrations\"",
    ] {
        assert!(
            connect_command.contains(piece),
            "the connect recipe lost {piece:?}: {connect_command}"
        );
    }

    // Every call is signed for API Gateway and names an operation the document has.
    let calls: Vec<(String, String)> = commands(&readme)
        .iter()
        .filter(|c| c.contains("awscurl --"))
        .map(|c| awscurl_call(c))
        .collect();
    assert!(calls.len() >= 4, "awscurl calls in the README: {calls:?}");
    for (method, path) in &calls {
        assert!(
            doc["paths"][path.as_str()]
                .get(method.to_ascii_lowercase())
                .is_some(),
            "the README calls {method} {path}, which openapi.json does not document"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reclaim: the function, the state machine, and who may drive it
// ---------------------------------------------------------------------------------------------

/// The one `AWS::Serverless::StateMachine` (the reclaim workflow), by id.
fn reclaim_state_machine(template: &Template) -> (String, &Value) {
    let machines: Vec<(&str, &Value)> = template
        .resources()
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::StateMachine"))
        .collect();
    assert_eq!(machines.len(), 1, "one state machine: the reclaim workflow");
    (machines[0].0.to_owned(), machines[0].1)
}

/// The function deploying `functions/reclaim`.
fn reclaim_function(template: &Template) -> (String, &Value) {
    template
        .functions()
        .into_iter()
        .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some("../functions/reclaim"))
        .expect("the template deploys functions/reclaim")
}

/// The state machine's ARN built from its explicit name, as code that may not reference
/// the resource (a cycle) writes it.
fn state_machine_arn_by_name(machine: &Value) -> String {
    let name = machine["Properties"]["Name"]
        .as_sub()
        .expect("the state machine's Name is an explicit !Sub string");
    format!(
        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{name}"
    )
}

/// Resources of the role's statements that allow `action`.
fn resources_allowing(template: &Template, role: &str, action: &str) -> Vec<Value> {
    template
        .role_statements(role)
        .iter()
        .filter(|s| allows(s, action))
        .flat_map(resources_of)
        .collect()
}

#[test]
fn the_reclaim_state_machine_runs_its_definition_and_invokes_only_the_reclaim_function() {
    let template = Template::load();
    let (id, machine) = reclaim_state_machine(&template);
    let props = &machine["Properties"];
    assert_eq!(
        props["Type"].as_str(),
        Some("STANDARD"),
        "{id}: an approval waits up to 7 days, beyond what Express allows"
    );

    // Every ${...} of the definition is substituted, and nothing else.
    let uri = props["DefinitionUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: DefinitionUri is a path in infra/"));
    let definition = std::fs::read_to_string(repo_root().join("infra").join(uri))
        .unwrap_or_else(|e| panic!("{id}: cannot read {uri}: {e}"));
    let placeholders: BTreeSet<String> = definition
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect();
    let substitutions = &props["DefinitionSubstitutions"];
    let substituted: BTreeSet<String> = substitutions
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, _)| text(k))
        .collect();
    assert_eq!(placeholders, substituted, "{id}: DefinitionSubstitutions");

    // The function it invokes is functions/reclaim, and its role invokes nothing else.
    let (function, _) = reclaim_function(&template);
    assert_eq!(
        substitutions["ReclaimFunctionArn"].as_get_att(),
        Some((function.clone(), "Arn".to_owned())),
        "{id}: ReclaimFunctionArn"
    );
    let role = props["Role"]
        .as_get_att()
        .map(|(r, _)| r)
        .unwrap_or_else(|| panic!("{id}: Role should be !GetAtt <Role>.Arn"));
    let invoked: Vec<Option<(String, String)>> =
        resources_allowing(&template, &role, "lambda:InvokeFunction")
            .iter()
            .map(Intrinsic::as_get_att)
            .collect();
    assert_eq!(
        invoked,
        vec![Some((function, "Arn".to_owned()))],
        "{id}: may invoke the reclaim function and nothing else"
    );
    let trusted = &template.resources()[role.as_str()]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        [0]["Principal"]["Service"];
    assert_eq!(
        trusted.as_str(),
        Some("states.amazonaws.com"),
        "{role}: trust"
    );

    // The topic it tells about a failed Finalize is the one it may publish to.
    let topic = substitutions["NotifyTopicArn"]
        .as_ref_target()
        .expect("NotifyTopicArn is !Ref <topic>");
    let published: Vec<Option<String>> = resources_allowing(&template, &role, "sns:Publish")
        .iter()
        .map(Intrinsic::as_ref_target)
        .collect();
    assert_eq!(published, vec![Some(topic)], "{role}: sns:Publish");
}

#[test]
fn the_reclaim_function_answers_only_the_waits_of_the_state_machine_it_serves() {
    let template = Template::load();
    let (_, machine) = reclaim_state_machine(&template);
    let arn = state_machine_arn_by_name(machine);
    let (id, function) = reclaim_function(&template);
    let props = &function["Properties"];
    let environment = template.environment(&id);
    assert_eq!(
        environment
            .get("SEATKEEPER_STATE_MACHINE_ARN")
            .and_then(Value::as_sub),
        Some(arn.clone()),
        "{id}: SEATKEEPER_STATE_MACHINE_ARN names the state machine (by name: no cycle)"
    );
    let role = props["Role"].as_get_att().expect("explicit role").0;
    let answered: Vec<bool> = resources_allowing(&template, &role, "states:SendTaskSuccess")
        .iter()
        .map(is_any_resource)
        .collect();
    assert_eq!(
        answered,
        vec![true],
        "{id}: answers approval waits (by task token: IAM takes no resource for it)"
    );
    for statement in template.role_statements(&role) {
        for action in actions_of(&statement) {
            assert!(
                !action.starts_with("states:") || action == "states:SendTaskSuccess",
                "{id}: {action}: an auto-approval answers its own wait, nothing more"
            );
        }
    }

    // Notices go to the topic it is given, and only there.
    let topic = environment
        .get("SEATKEEPER_NOTIFY_TOPIC_ARN")
        .and_then(Value::as_ref_target)
        .expect("SEATKEEPER_NOTIFY_TOPIC_ARN is !Ref <topic>");
    let published: Vec<Option<String>> = resources_allowing(&template, &role, "sns:Publish")
        .iter()
        .map(Intrinsic::as_ref_target)
        .collect();
    assert_eq!(published, vec![Some(topic)], "{id}: sns:Publish");

    // A batch returns 60 s before the deadline; a Box transfer alone can take 12 minutes.
    assert_eq!(props["Timeout"].as_u64(), Some(900), "{id}: Timeout");
}

#[test]
fn the_api_may_start_answer_and_stop_reclaim_executions_only() {
    let template = Template::load();
    let (machine_id, machine) = reclaim_state_machine(&template);
    let (id, function) = template
        .functions()
        .into_iter()
        .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some("../functions/api"))
        .expect("the template deploys functions/api");
    let role = function["Properties"]["Role"]
        .as_get_att()
        .expect("explicit role")
        .0;
    let on: Vec<Option<String>> = resources_allowing(&template, &role, "states:StartExecution")
        .iter()
        .map(Intrinsic::as_ref_target)
        .collect();
    assert_eq!(
        on,
        vec![Some(machine_id.clone())],
        "{id}: states:StartExecution"
    );
    for action in ["states:SendTaskSuccess", "states:SendTaskFailure"] {
        let on: Vec<bool> = resources_allowing(&template, &role, action)
            .iter()
            .map(is_any_resource)
            .collect();
        assert_eq!(on, vec![true], "{id}: {action} (by task token)");
    }
    // Executions are named after their job (`job-<job id>`): StopExecution reaches those.
    let name = machine["Properties"]["Name"]
        .as_sub()
        .expect("explicit name");
    let stop: Vec<Option<String>> = resources_allowing(&template, &role, "states:StopExecution")
        .iter()
        .map(Intrinsic::as_sub)
        .collect();
    assert_eq!(
        stop,
        vec![Some(format!(
            "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}:job-*"
        ))],
        "{id}: states:StopExecution"
    );
    let job = seatkeeper_shared::domain::ReclaimJobId::generate();
    assert!(seatkeeper_shared::workflow::execution_name(&job).starts_with("job-"));
    for statement in template.role_statements(&role) {
        for action in actions_of(&statement) {
            assert!(
                !action.starts_with("states:")
                    || [
                        "states:StartExecution",
                        "states:SendTaskSuccess",
                        "states:SendTaskFailure",
                        "states:StopExecution"
                    ]
                    .contains(&action.as_str()),
                "{id}: {action} is more than the reclaim routes need"
            );
        }
    }
}

#[test]
fn a_reclaim_execution_that_ends_badly_raises_an_alarm() {
    let template = Template::load();
    let (machine_id, _) = reclaim_state_machine(&template);
    let resources = template.resources();
    let alarm = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .find(|r| {
            r["Properties"]["Metrics"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["MetricStat"]["Metric"]["MetricName"].as_str() == Some("ExecutionsFailed")
                        && m["MetricStat"]["Metric"]["Dimensions"][0]["Value"].as_ref_target()
                            == Some(machine_id.clone())
                })
        })
        .expect("an alarm on the reclaim state machine's ExecutionsFailed");
    let metrics: BTreeSet<String> = alarm["Properties"]["Metrics"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            m["MetricStat"]["Metric"]["MetricName"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    for metric in [
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    ] {
        assert!(metrics.contains(metric), "the alarm misses {metric}");
    }
    let topic = alarm["Properties"]["AlarmActions"][0]
        .as_ref_target()
        .expect("!Ref <topic>");
    assert_eq!(
        resources[topic.as_str()]["Type"].as_str(),
        Some("AWS::SNS::Topic")
    );
}

// ---------------------------------------------------------------------------------------------
// The README's API calls
// ---------------------------------------------------------------------------------------------

/// The JSON value in the first ```json block after `marker`.
fn json_block_after(text: &str, marker: &str) -> serde_json::Value {
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} is not in the README"));
    let block = text[from..]
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("no ```json block after {marker}"));
    serde_json::from_str(block).unwrap_or_else(|e| panic!("the {marker} example: {e}"))
}

/// The shell commands of the README's ```sh blocks, continuation lines joined.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in text.split("```sh\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let mut command = String::new();
        for line in block.lines() {
            let line = line.trim();
            // A trailing `\` or `|` continues the command on the next line.
            if let Some(head) = line.strip_suffix('\\') {
                command.push_str(head);
            } else if line.ends_with('|') {
                command.push_str(line);
                command.push(' ');
            } else {
                command.push_str(line);
                out.push(std::mem::take(&mut command));
            }
        }
    }
    out
}

/// `(method, documented path)` of an awscurl call: `-X` (default GET), and the URL
/// `"$API_URL/..."` with `$ID` standing for `{id}` and without its query.
fn awscurl_call(command: &str) -> (String, String) {
    let call = &command[command.find("awscurl --").expect("awscurl")..];
    let call = call.split(" | ").next().unwrap_or(call);
    let words: Vec<&str> = call.split_whitespace().collect();
    let value_of = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    assert_eq!(
        value_of("--service"),
        Some("execute-api"),
        "sign for API Gateway: {call}"
    );
    assert_eq!(value_of("--region"), Some("\"$REGION\""), "{call}");
    let method = value_of("-X").unwrap_or("GET").to_owned();
    let url = words
        .iter()
        .find_map(|w| w.trim_matches('"').strip_prefix("$API_URL"))
        .unwrap_or_else(|| panic!("no \"$API_URL/...\" in {call}"));
    let path = url.split('?').next().unwrap_or(url).replace("$ID", "{id}");
    (method, path)
}

/// The JSON schema of an operation's request body.
fn request_schema<'a>(
    doc: &'a serde_json::Value,
    path: &str,
    method: &str,
) -> &'a serde_json::Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} takes no JSON body");
    schema
}

/// What `value` breaks in `schema`. Covers the keywords the request schemas use; any other
/// keyword fails the test rather than being skipped, so a schema cannot outgrow the check.
fn schema_errors(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
) -> Vec<String> {
    let mut errors = Vec::new();
    check_schema(doc, schema, value, "body", &mut errors);
    errors
}

fn check_schema(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    use serde_json::Value as J;
    let keywords = schema.as_object().expect("a schema is an object");
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            // Annotations.
            "description" | "title" | "writeOnly" | "readOnly" | "default" | "examples"
            | "format" => {}
            "$ref" => {
                let pointer = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                    .expect("a local $ref");
                let target = doc.pointer(pointer).expect("the $ref resolves");
                check_schema(doc, target, value, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    J::String(t) => vec![t.as_str()],
                    J::Array(ts) => ts.iter().filter_map(J::as_str).collect(),
                    _ => panic!("type at {at}: {rule}"),
                };
                let fits = |t: &str| match t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => panic!("unknown type {other}"),
                };
                if !types.iter().any(|t| fits(t)) {
                    errors.push(format!("{at}: {value} is not {types:?}"));
                }
            }
            "enum" => {
                if !rule.as_array().expect("enum").contains(value) {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "required" => {
                for name in rule
                    .as_array()
                    .expect("required")
                    .iter()
                    .filter_map(J::as_str)
                {
                    if value.is_object() && value.get(name).is_none() {
                        errors.push(format!("{at}.{name} is required"));
                    }
                }
            }
            "properties" => {
                let Some(object) = value.as_object() else {
                    continue;
                };
                for (name, property) in rule.as_object().expect("properties") {
                    if let Some(v) = object.get(name) {
                        check_schema(doc, property, v, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = value.as_object() else {
                    continue;
                };
                let known = keywords.get("properties").and_then(J::as_object);
                for (name, v) in object {
                    if known.is_some_and(|k| k.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        J::Bool(true) => {}
                        J::Bool(false) => errors.push(format!("{at}.{name} is not allowed")),
                        extra => check_schema(doc, extra, v, &format!("{at}.{name}"), errors),
                    }
                }
            }
            "anyOf" | "oneOf" => {
                let passing = rule
                    .as_array()
                    .expect(keyword)
                    .iter()
                    .filter(|sub| schema_errors(doc, sub, value).is_empty())
                    .count();
                let ok = if keyword == "anyOf" {
                    passing >= 1
                } else {
                    passing == 1
                };
                if !ok {
                    errors.push(format!("{at}: {passing} of the {keyword} schemas fit"));
                }
            }
            "minLength" | "maxLength" => {
                if let Some(s) = value.as_str() {
                    let n = s.chars().count() as u64;
                    let bound = rule.as_u64().expect(keyword);
                    if (keyword == "minLength" && n < bound)
                        || (keyword == "maxLength" && n > bound)
                    {
                        errors.push(format!("{at}: length {n} breaks {keyword} {bound}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let Some(n) = value.as_f64() {
                    let bound = rule.as_f64().expect(keyword);
                    if (keyword == "minimum" && n < bound) || (keyword == "maximum" && n > bound) {
                        errors.push(format!("{at}: {n} breaks {keyword} {bound}"));
                    }
                }
            }
            "pattern" => {
                if let Some(s) = value.as_str()
                    && !matches_pattern(rule.as_str().expect("pattern"), s)
                {
                    errors.push(format!("{at}: {s:?} does not match {rule}"));
                }
            }
            other => panic!("schema keyword {other:?} at {at}: extend check_schema"),
        }
    }
}

/// The pattern forms the request schemas use: `^[class]` followed by `*`, `+`, `{n}` or
/// `{m,n}`, then `$`. A class holds characters, ranges and `\uXXXX` escapes, and may be
/// negated. Any other pattern fails the test.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    fn unsupported(pattern: &str) -> ! {
        panic!("pattern {pattern:?}: extend matches_pattern")
    }
    /// One character of a class: itself, or an escape.
    fn atom(pattern: &str, chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<char> {
        let c = chars.next()?;
        if c != '\\' {
            return Some(c);
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                Some(c.unwrap_or_else(|| unsupported(pattern)))
            }
            Some(c @ ('\\' | '-' | ']' | '[' | '^')) => Some(c),
            _ => unsupported(pattern),
        }
    }

    let Some((class, quantifier)) = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix('$'))
        .and_then(|p| p.rsplit_once(']'))
    else {
        unsupported(pattern)
    };
    let (negated, class) = match class.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, class),
    };
    let mut chars = class.chars().peekable();
    let mut ranges = Vec::new();
    while let Some(low) = atom(pattern, &mut chars) {
        let mut ahead = chars.clone();
        // `a-z` is a range; a `-` at the end of the class is itself.
        if ahead.next() == Some('-') && ahead.peek().is_some() {
            chars.next();
            let high = atom(pattern, &mut chars).unwrap_or_else(|| unsupported(pattern));
            ranges.push((low, high));
        } else {
            ranges.push((low, low));
        }
    }
    let (min, max) = match quantifier {
        "*" => (0, usize::MAX),
        "+" => (1, usize::MAX),
        q => {
            let Some(bounds) = q.strip_prefix('{').and_then(|q| q.strip_suffix('}')) else {
                unsupported(pattern)
            };
            let (min, max) = bounds.split_once(',').unwrap_or((bounds, bounds));
            match (min.parse(), max.parse()) {
                (Ok(min), Ok(max)) => (min, max),
                _ => unsupported(pattern),
            }
        }
    };
    let in_class = |c: char| ranges.iter().any(|&(low, high)| low <= c && c <= high) != negated;
    (min..=max).contains(&s.chars().count()) && s.chars().all(in_class)
}

#[test]
fn the_pattern_check_reads_the_document_s_patterns() {
    // The forms openapi.json uses; the README test relies on them being read right.
    assert!(matches_pattern("^[A-Za-z0-9_-]{1,128}$", "abc_DEF-123"));
    assert!(!matches_pattern("^[A-Za-z0-9_-]{1,128}$", ""));
    assert!(!matches_pattern("^[A-Za-z0-9_-]{1,128}$", "a b"));
    assert!(matches_pattern("^[0-9]{1,20}$", "123456"));
    assert!(!matches_pattern("^[0-9]{1,20}$", "12a"));
    assert!(!matches_pattern("^[0-9]{1,20}$", &"1".repeat(21)));
    let printable = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
    assert!(matches_pattern(printable, "Acme Box ✓"));
    assert!(matches_pattern(printable, ""));
    assert!(!matches_pattern(printable, "line\nbreak"));
    assert!(!matches_pattern(printable, "\u{85}"));
    assert!(matches_pattern("^[a-z0-9-]{1,64}$", "0b0e7c5e-6a4f"));
    assert!(!matches_pattern("^[a-z0-9-]{1,64}$", "ABC"));
}

// ---------------------------------------------------------------------------------------------
// The template
// ---------------------------------------------------------------------------------------------

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Template {
        let path = repo_root().join("infra/template.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = yaml_serde::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        Template { root }
    }

    fn resources(&self) -> BTreeMap<&str, &Value> {
        self.root["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter_map(|(id, resource)| Some((id.as_str()?, resource)))
            .collect()
    }

    fn functions(&self) -> Vec<(String, &Value)> {
        let functions: Vec<(String, &Value)> = self
            .resources()
            .into_iter()
            .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
            .map(|(id, r)| (id.to_owned(), r))
            .collect();
        assert!(!functions.is_empty(), "the template has no functions");
        functions
    }

    /// A function property, or else its value in Globals.Function.
    fn function_setting(&self, id: &str, property: &str) -> &Value {
        let own = &self.resources()[id]["Properties"][property];
        if own.is_null() {
            &self.root["Globals"]["Function"][property]
        } else {
            own
        }
    }

    /// Globals' variables merged with the function's own (SAM's rule: the function wins).
    fn environment(&self, id: &str) -> BTreeMap<String, Value> {
        let globals = &self.root["Globals"]["Function"]["Environment"]["Variables"];
        let own = &self.resources()[id]["Properties"]["Environment"]["Variables"];
        let mut vars = BTreeMap::new();
        for (name, value) in [globals, own]
            .into_iter()
            .filter_map(Value::as_mapping)
            .flat_map(Mapping::iter)
        {
            vars.insert(text(name), value.clone());
        }
        vars
    }

    fn role_statements(&self, role: &str) -> Vec<Value> {
        let role = &self.resources()[role];
        assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"));
        role["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| statements(&p["PolicyDocument"]))
            .collect()
    }
}

fn crate_dir(id: &str, function: &Value) -> PathBuf {
    let code_uri = function["Properties"]["CodeUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: CodeUri"));
    normalise(&repo_root().join("infra").join(code_uri))
}

fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Sequence(list) => list.clone(),
        Value::Mapping(_) => vec![document["Statement"].clone()],
        other => panic!("policy document without statements: {other:?}"),
    }
}

fn actions_of(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(action) => vec![action.clone()],
        Value::Sequence(list) => list.iter().map(text).collect(),
        other => panic!("statement without Action: {other:?}"),
    }
}

fn resources_of(statement: &Value) -> Vec<Value> {
    match &statement["Resource"] {
        Value::Sequence(list) => list.clone(),
        Value::Null => panic!("statement without Resource: {statement:?}"),
        one => vec![one.clone()],
    }
}

fn allows(statement: &Value, action: &str) -> bool {
    statement["Effect"].as_str() == Some("Allow")
        && actions_of(statement).iter().any(|a| a == action)
}

fn check_policy_document(id: &str, document: &Value) {
    for statement in statements(document) {
        assert!(
            statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
            "{id}: NotAction/NotResource grant everything else"
        );
        if statement["Effect"].as_str() != Some("Allow") {
            continue;
        }
        let actions = actions_of(&statement);
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{id}: {action} is a wildcard action; name the actions the code calls"
            );
        }
        for resource in resources_of(&statement) {
            if is_any_resource(&resource) {
                let needs_star: Vec<&String> = actions
                    .iter()
                    .filter(|a| !RESOURCE_STAR_ONLY.contains(&a.as_str()))
                    .collect();
                assert!(
                    needs_star.is_empty(),
                    "{id}: {needs_star:?} granted on every resource; name the resource (only \
                     {RESOURCE_STAR_ONLY:?} need \"*\")"
                );
            }
        }
    }
}

/// `"*"`, or an ARN whose last part is `*` or `<type>/*` (every table, every function...).
/// A prefix such as `secret:seatkeeper/integrations/*` is a named set and is fine.
fn is_any_resource(resource: &Value) -> bool {
    let arn = match resource {
        Value::String(s) => s.clone(),
        other => match other.as_sub() {
            Some(s) => s,
            None => return false, // !GetAtt / !Ref: one resource of the template
        },
    };
    let last = arn.rsplit(':').next().unwrap_or_default();
    arn == "*" || last == "*" || (last.ends_with("/*") && last.matches('/').count() == 1)
}

fn key_schema(schema: &Value) -> (String, String) {
    let mut hash = None;
    let mut range = None;
    for key in schema.as_sequence().into_iter().flatten() {
        match key["KeyType"].as_str() {
            Some("HASH") => hash = Some(text(&key["AttributeName"])),
            Some("RANGE") => range = Some(text(&key["AttributeName"])),
            other => panic!("unexpected KeyType {other:?}"),
        }
    }
    (hash.expect("a HASH key"), range.expect("a RANGE key"))
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("expected a string, found {value:?}"))
}

/// CloudFormation intrinsics, in their short (`!Ref X`) and long (`Ref: X`) forms.
trait Intrinsic {
    fn intrinsic(&self, name: &str) -> Option<&Value>;

    fn as_ref_target(&self) -> Option<String> {
        self.intrinsic("Ref")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn as_sub(&self) -> Option<String> {
        self.intrinsic("Sub")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// `!GetAtt Resource.Attribute` or `[Resource, Attribute]`.
    fn as_get_att(&self) -> Option<(String, String)> {
        match self.intrinsic("GetAtt")? {
            Value::String(s) => s.split_once('.').map(|(r, a)| (r.to_owned(), a.to_owned())),
            Value::Sequence(parts) if parts.len() == 2 => {
                Some((parts[0].as_str()?.to_owned(), parts[1].as_str()?.to_owned()))
            }
            _ => None,
        }
    }
}

impl Intrinsic for Value {
    fn intrinsic(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
            Value::Mapping(map) if map.len() == 1 => {
                let long = if name == "Ref" {
                    name.to_owned()
                } else {
                    format!("Fn::{name}")
                };
                map.get(long.as_str())
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The code
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    normalise(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Resolves `..` and `.` without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The `members` of the workspace's Cargo.toml.
fn workspace_members() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let start = text.find("members").expect("workspace members");
    let list = &text[start..];
    let list = &list[list.find('[').expect("[")..=list.find(']').expect("]")];
    quoted_strings(list).into_iter().collect()
}

struct Manifest {
    package: String,
    bins: Vec<String>,
}

impl Manifest {
    /// The package name and `[[bin]]` names: all the template needs from a Cargo.toml.
    fn read(path: &Path) -> Manifest {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut section = String::new();
        let mut package = None;
        let mut bins = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let Some(value) = line
                .strip_prefix("name")
                .map(str::trim_start)
                .and_then(|rest| rest.strip_prefix('='))
            else {
                continue;
            };
            let name = quoted_strings(value).into_iter().next();
            match section.as_str() {
                "[package]" => package = name,
                "[[bin]]" => bins.extend(name),
                _ => {}
            }
        }
        Manifest {
            package: package.unwrap_or_else(|| panic!("{}: no package name", path.display())),
            bins,
        }
    }

    /// Binaries the crate builds: its `[[bin]]`s, or the package's own when there are none.
    fn binaries(&self) -> Vec<String> {
        if self.bins.is_empty() {
            vec![self.package.clone()]
        } else {
            self.bins.clone()
        }
    }
}

fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn set_by_lambda(name: &str) -> bool {
    name.starts_with(SET_BY_LAMBDA_PREFIX) || SET_BY_LAMBDA.contains(&name)
}

/// Names of the environment variables read under `dir` (`.rs` files, recursively): the
/// literal argument of `env_var(..)`, `env::var(..)`, `env::var_os(..)` and
/// `EnvFilter::try_from_env(..)`, and every `"SEATKEEPER_…"` string literal (constants
/// that name a variable are read somewhere too).
fn env_vars_read_in(dir: &Path) -> BTreeSet<String> {
    const READERS: &[&str] = &[
        "env_var(\"",
        "env::var(\"",
        "env::var_os(\"",
        "try_from_env(\"",
    ];
    let mut names = BTreeSet::new();
    for file in rust_files(dir) {
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for reader in READERS {
            for (at, _) in source.match_indices(reader) {
                names.extend(literal_at(&source[at + reader.len()..]));
            }
        }
        for (at, _) in source.match_indices("\"SEATKEEPER_") {
            names.extend(literal_at(&source[at + 1..]));
        }
    }
    names
}

/// The variable name at the start of `rest`, up to the closing quote.
fn literal_at(rest: &str) -> Option<String> {
    let name = &rest[..rest.find('"')?];
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then(|| name.to_owned())
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

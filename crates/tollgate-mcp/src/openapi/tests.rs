use super::*;

const DOC: &str = r##"
openapi: 3.0.3
info: {title: pets, version: "1"}
servers: [{url: "https://api.example.com/v1/"}]
paths:
  /pets/{petId}:
    parameters:
      - {name: petId, in: path, required: true, schema: {type: integer}, description: The pet}
    get:
      operationId: getPet
      summary: One pet
      parameters:
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: Authorization, in: header, schema: {type: string}}
    delete:
      summary: Delete a pet
  /pets:
    get:
      operationId: list pets!
      parameters:
        - $ref: "#/components/parameters/limit"
        - {name: tag, in: query, schema: {type: array, items: {type: string}}}
    post:
      operationId: createPet
      description: Adds a pet
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
  /upload:
    post:
      operationId: upload
      requestBody:
        required: true
        content: {multipart/form-data: {schema: {type: object}}}
components:
  parameters:
    limit: {name: limit, in: query, required: false, schema: {type: integer, maximum: 100}}
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        name: {type: string}
        owner: {$ref: "#/components/schemas/Person"}
    Person:
      type: object
      properties:
        name: {type: string}
        pets: {type: array, items: {$ref: "#/components/schemas/Pet"}}
"##;

fn all(_: &str) -> bool {
    true
}

fn schema_of(api: &Api, tool: &str) -> Value {
    api.find(tool).unwrap().tool.rest["inputSchema"].clone()
}

#[test]
fn operations_become_tools() {
    let api = Api::parse(DOC, &all).unwrap();
    let names: Vec<&str> = api
        .operations
        .iter()
        .map(|o| o.tool.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec!["list_pets", "createPet", "getPet", "delete_pets_petId"]
    );
    assert_eq!(api.skipped.len(), 1, "{:?}", api.skipped);
    assert!(api.skipped[0].starts_with("POST /upload"));
    assert_eq!(
        api.server_url.as_deref(),
        Some("https://api.example.com/v1/")
    );

    let get = api.find("getPet").unwrap();
    assert_eq!(get.tool.description.as_deref(), Some("One pet"));
    assert_eq!(
        schema_of(&api, "getPet"),
        json!({"type": "object", "required": ["petId"], "properties": {
            "petId": {"type": "integer", "description": "The pet"},
            "X-Trace": {"type": "string"}}})
    );
    let list = schema_of(&api, "list_pets");
    assert_eq!(
        list["properties"]["limit"],
        json!({"type": "integer", "maximum": 100})
    );
    assert!(list.get("required").is_none());
}

#[test]
fn bodies_are_inlined_with_cycles_cut() {
    let api = Api::parse(DOC, &all).unwrap();
    let s = schema_of(&api, "createPet");
    assert_eq!(s["required"], json!(["body"]));
    let body = &s["properties"]["body"];
    assert_eq!(body["required"], json!(["name"]));
    let owner = &body["properties"]["owner"];
    assert_eq!(owner["properties"]["name"], json!({"type": "string"}));
    assert_eq!(
        owner["properties"]["pets"]["items"],
        json!({"description": "recursive: #/components/schemas/Pet"})
    );
    assert!(!s.to_string().contains("$ref"));
    assert_eq!(api.find("createPet").unwrap().body, Some(true));
}

#[test]
fn a_curated_subset() {
    let keep = |n: &str| n == "getPet" || n.starts_with("create");
    let api = Api::parse(DOC, &keep).unwrap();
    let names: Vec<&str> = api
        .operations
        .iter()
        .map(|o| o.tool.name.as_str())
        .collect();
    assert_eq!(names, vec!["createPet", "getPet"]);
}

#[test]
fn calls_become_requests() {
    let api = Api::parse(DOC, &all).unwrap();
    let args = |v: Value| v.as_object().unwrap().clone();
    let (url, query, headers) = request_parts(
        "https://h/v1",
        api.find("getPet").unwrap(),
        &args(json!({"petId": 7, "X-Trace": "t-1"})),
    )
    .unwrap();
    assert_eq!(url, "https://h/v1/pets/7");
    assert!(query.is_empty());
    assert_eq!(headers[0].0.as_str(), "x-trace");
    // A value cannot leave its path segment.
    let (url, _, _) = request_parts(
        "https://h",
        api.find("getPet").unwrap(),
        &args(json!({"petId": "../admin?x=1#f"})),
    )
    .unwrap();
    assert_eq!(url, "https://h/pets/..%2Fadmin%3Fx%3D1%23f");
    let (_, query, _) = request_parts(
        "https://h",
        api.find("list_pets").unwrap(),
        &args(json!({"limit": 5, "tag": ["a", "b"]})),
    )
    .unwrap();
    assert_eq!(
        query,
        vec![
            ("limit".to_string(), "5".to_string()),
            ("tag".into(), "a".into()),
            ("tag".into(), "b".into())
        ]
    );
    assert_eq!(
        request_parts("https://h", api.find("getPet").unwrap(), &args(json!({})))
            .map_err(|e| e.to_string()),
        Err("missing required argument \"petId\"".to_string())
    );
    assert_eq!(
        request_parts(
            "https://h",
            api.find("createPet").unwrap(),
            &args(json!({}))
        )
        .map_err(|e| e.to_string()),
        Err("missing required argument \"body\"".to_string())
    );
}

#[test]
fn answers_become_tool_results() {
    let ok = tool_result(http::StatusCode::OK, true, r#"{"id":1}"#.into());
    assert_eq!(ok["structuredContent"], json!({"id": 1}));
    assert_eq!(ok["content"][0]["text"], r#"{"id":1}"#);
    assert_eq!(ok["isError"], false);
    let list = tool_result(http::StatusCode::OK, true, "[1,2]".into());
    assert_eq!(list["structuredContent"], json!({"result": [1, 2]}));
    let text = tool_result(http::StatusCode::OK, false, "plain".into());
    assert!(text.get("structuredContent").is_none());
    let err = tool_result(http::StatusCode::NOT_FOUND, true, "no pet".into());
    assert_eq!(err["isError"], true);
    assert_eq!(err["content"][0]["text"], "HTTP 404: no pet");
}

#[test]
fn names_follow_mcp_rules() {
    assert_eq!(tool_name("get_/pets/{id}/toys"), "get_pets_id_toys");
    assert_eq!(tool_name("a.b-c_d"), "a.b-c_d");
    assert_eq!(tool_name("ünï"), "n");
    assert_eq!(tool_name("///"), "operation");
    assert_eq!(tool_name(&"x".repeat(300)).len(), 128);
    assert!(matches!(
        Api::parse("openapi: \"2.0\"\npaths: {}", &all),
        Err(OpenApiError::Version(_))
    ));
    assert!(matches!(
        Api::parse("[1, 2", &all),
        Err(OpenApiError::Parse(_))
    ));
}

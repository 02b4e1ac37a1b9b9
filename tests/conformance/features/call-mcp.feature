Feature: MCP Call Task
  As an implementer of the workflow DSL
  I want call: mcp to reach Model Context Protocol servers over streamable HTTP and stdio
  So that workflows can list and call tools, prompts and resources

  Scenario: Call a tool over streamable HTTP
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-http-tool
      version: '1.0.0'
    do:
      - echo:
          call: mcp
          with:
            method: tools/call
            parameters:
              name: echo
              arguments:
                text: ${ .greeting }
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    And given the workflow input is:
    """yaml
    greeting: hello
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    content:
      - type: text
        text: hello
    structuredContent:
      result: hello
    isError: false
    """

  Scenario: List the tools of a stdio server
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-stdio-tools
      version: '1.0.0'
    do:
      - listTools:
          call: mcp
          with:
            method: tools/list
            transport:
              stdio:
                command: mcp-test-server
          output:
            as: '${ {echo: (.tools | map(.name) | index("echo") != null), count: (.tools | length > 5)} }'
    """
    And the MCP server command 'mcp-test-server' is installed for stdio
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    echo: true
    count: true
    """

  Scenario: The official example's tool over stdio gets its arguments and environment
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-stdio-slack
      version: '1.0.0'
    do:
      - publishMessageToSlack:
          call: mcp
          with:
            method: tools/call
            parameters:
              name: conversations_add_message
              arguments:
                channel_id: C1234567890
                thread_ts: '1623456789.123456'
                payload: 'Hello, world! :wave:'
                content_type: text/markdown
            transport:
              stdio:
                command: npx
                arguments: [ slack-mcp-server@latest, --transport, stdio ]
                environment:
                  SLACK_MCP_XOXP_TOKEN: xoxp-test
          output:
            as: .structuredContent
    """
    And the MCP server command 'npx' is installed for stdio
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    channel: C1234567890
    thread: '1623456789.123456'
    text: 'Hello, world! :wave:'
    contentType: text/markdown
    arguments: [ slack-mcp-server@latest, --transport, stdio ]
    token: xoxp-test
    """

  Scenario: Get a prompt with arguments
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-prompt
      version: '1.0.0'
    do:
      - greet:
          call: mcp
          with:
            method: prompts/get
            parameters:
              name: greeting
              arguments:
                name: Ada
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
          output:
            as: .messages[0].content.text
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    Hello, Ada!
    """

  Scenario: Read a resource from a template and list the templates
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-resources
      version: '1.0.0'
    do:
      - read:
          call: mcp
          with:
            method: resources/read
            parameters:
              uri: greeting://Grace
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
          output:
            as: '${ {text: .contents[0].text} }'
      - templates:
          call: mcp
          with:
            method: resources/templates/list
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
          output:
            as: '${ $input + {templates: [.resourceTemplates[].uriTemplate]} }'
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    text: Hello, Grace!
    templates: [ 'greeting://{name}' ]
    """

  Scenario: A failing tool raises a runtime error the workflow can catch
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-tool-error
      version: '1.0.0'
    do:
      - tryIt:
          try:
            - post:
                call: mcp
                with:
                  method: tools/call
                  parameters:
                    name: fail
                    arguments:
                      reason: channel not found
                  transport:
                    http:
                      endpoint: https://mcp.example.com/mcp
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
            as: failure
            do:
              - note:
                  set:
                    caught: ${ $failure.title }
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    caught: MCP Tool Error
    """

  Scenario: A JSON-RPC error faults the workflow with the server's message
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-rpc-error
      version: '1.0.0'
    do:
      - greet:
          call: mcp
          with:
            method: prompts/get
            parameters:
              name: farewell
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
    status: 500
    """
    And the error detail should contain 'answered prompts/get with JSON-RPC error 0: Unknown prompt: farewell'

  Scenario: A call past its timeout faults with a timeout error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mcp-timeout
      version: '1.0.0'
    do:
      - wait:
          call: mcp
          with:
            method: tools/call
            parameters:
              name: slow
              arguments:
                seconds: 60
            timeout:
              milliseconds: 500
            transport:
              http:
                endpoint: https://mcp.example.com/mcp
    """
    And an MCP server at 'https://mcp.example.com' over streamable HTTP
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    """
    And the error detail should contain 'did not finish within 0.5s'

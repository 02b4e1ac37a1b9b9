Feature: A2A Call
  As an implementer of the workflow DSL
  I want call: a2a to send A2A JSON-RPC requests over HTTP
  So that workflows can ask AI agents to act, durably

  Scenario: Send a message to an agent's server and get the JSON-RPC result
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-send
      version: '1.0.0'
    do:
      - ask:
          call: a2a
          with:
            method: message/send
            server: https://agent.example.com/a2a
            parameters:
              message:
                parts:
                  - kind: text
                    text: ${ .question }
          output:
            as: ${ .artifacts[0].parts[0].text }
    """
    And given the workflow input is:
    """yaml
    question: Generate the Q1 sales report.
    """
    And the endpoint 'POST https://agent.example.com/a2a' answers 200 with:
    """yaml
    jsonrpc: '2.0'
    id: 1
    result:
      kind: task
      id: task-1
      status:
        state: completed
      artifacts:
        - artifactId: report
          parts:
            - kind: text
              text: Q1 sales were up 12%.
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    Q1 sales were up 12%.
    """

  Scenario: The agent card says where the agent's JSON-RPC server is
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-card
      version: '1.0.0'
    do:
      - status:
          call: a2a
          with:
            method: tasks/get
            agentCard:
              endpoint: https://agent.example.com/.well-known/agent-card.json
            parameters:
              id: task-1
    """
    And the endpoint 'GET https://agent.example.com/.well-known/agent-card.json' answers 200 with:
    """yaml
    name: reporter
    url: https://rpc.agent.example.com/v1
    preferredTransport: JSONRPC
    """
    And the endpoint 'POST https://rpc.agent.example.com/v1' answers 200 with:
    """yaml
    jsonrpc: '2.0'
    id: 1
    result:
      kind: task
      id: task-1
      status:
        state: working
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have a 'status.state' property with value:
    """yaml
    working
    """

  Scenario: A JSON-RPC error faults the task with a runtime error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-error
      version: '1.0.0'
    do:
      - status:
          call: a2a
          with:
            method: tasks/get
            server: https://agent.example.com/a2a
            parameters:
              id: unknown
    """
    And the endpoint 'POST https://agent.example.com/a2a' answers 200 with:
    """yaml
    jsonrpc: '2.0'
    id: 1
    error:
      code: -32001
      message: Task not found
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
    instance: /do/0/status
    """
    And the error detail should contain 'JSON-RPC error -32001: Task not found'

  Scenario: A JSON-RPC error can be caught and handled
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-catch
      version: '1.0.0'
    do:
      - guarded:
          try:
            - cancel:
                call: a2a
                with:
                  method: tasks/cancel
                  server: https://agent.example.com/a2a
                  parameters:
                    id: task-1
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
            as: failure
            do:
              - note:
                  set:
                    cancelled: false
    """
    And the endpoint 'POST https://agent.example.com/a2a' answers 200 with:
    """yaml
    jsonrpc: '2.0'
    id: 1
    error:
      code: -32002
      message: Task cannot be canceled
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    cancelled: false
    """

  Scenario: A streamed message returns every event's result in order
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-stream
      version: '1.0.0'
    do:
      - ask:
          call: a2a
          with:
            method: message/stream
            server: https://agent.example.com/a2a
            parameters:
              message:
                parts:
                  - kind: text
                    text: stream please
          output:
            as: ${ map(.kind) }
    """
    And the endpoint 'POST https://agent.example.com/a2a' answers 200 with events:
    """yaml
    - jsonrpc: '2.0'
      id: 1
      result: {kind: task, id: t1, status: {state: submitted}}
    - jsonrpc: '2.0'
      id: 1
      result: {kind: status-update, taskId: t1, status: {state: working}, final: false}
    - jsonrpc: '2.0'
      id: 1
      result: {kind: artifact-update, taskId: t1, artifact: {artifactId: a, parts: [{kind: text, text: hi}]}}
    - jsonrpc: '2.0'
      id: 1
      result: {kind: status-update, taskId: t1, status: {state: completed}, final: true}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [task, status-update, artifact-update, status-update]
    """

  Scenario: An unavailable agent faults the task with a communication error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: a2a-down
      version: '1.0.0'
    do:
      - ask:
          call: a2a
          with:
            method: message/send
            server: https://agent.example.com/a2a
            parameters:
              message:
                parts:
                  - kind: text
                    text: anyone?
    """
    And the endpoint 'POST https://agent.example.com/a2a' answers 503
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
    status: 503
    """

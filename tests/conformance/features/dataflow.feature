Feature: Data Flow and Flow Directives
  As an implementer of the workflow DSL
  I want data to flow through schemas, transformations and the context
  So that tasks see exactly the data the specification says

  Scenario: Workflow input that fails its schema faults with a validation error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: input-schema
      version: '1.0.0'
    input:
      schema:
        format: json
        document:
          type: object
          required: [ orderId ]
    do:
      - noop:
          set:
            ok: true
    """
    And given the workflow input is:
    """yaml
    customer: 1
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
    status: 400
    """
    And the error detail should contain 'orderId'

  Scenario: Exported context is visible to later tasks
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: export-context
      version: '1.0.0'
    do:
      - remember:
          set:
            customer: ${ .customer }
          export:
            as: '{ customer: .customer }'
      - forget:
          set:
            step: two
      - recall:
          set:
            customer: ${ $context.customer }
            step: ${ .step }
    """
    And given the workflow input is:
    """yaml
    customer: ada
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    customer: ada
    step: two
    """

  Scenario: Workflow output is transformed and validated
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: workflow-output
      version: '1.0.0'
    output:
      as: .total
      schema:
        document:
          type: number
    do:
      - sum:
          set:
            total: ${ .a + .b }
    """
    And given the workflow input is:
    """yaml
    a: 2
    b: 3
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    5
    """

  Scenario: A goto loop revisits tasks until a switch leaves it
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: goto-loop
      version: '1.0.0'
    do:
      - increment:
          set:
            count: ${ .count + 1 }
      - check:
          switch:
            - again:
                when: ${ .count < 3 }
                then: increment
            - done:
                then: exit
    """
    And given the workflow input is:
    """yaml
    count: 0
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    count: 3
    """

  Scenario: End inside a loop ends the whole workflow
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: end-in-loop
      version: '1.0.0'
    do:
      - loop:
          for:
            in: .items
          do:
            - add:
                set:
                  seen: ${ .seen + [ $item ] }
            - stop:
                if: ${ $item == "b" }
                set:
                  seen: ${ .seen }
                then: end
      - never:
          set:
            seen: []
    """
    And given the workflow input is:
    """yaml
    items: [ a, b, c ]
    seen: []
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    seen: [ a, b ]
    """

  Scenario: For loop stops when its while condition fails
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: for-while
      version: '1.0.0'
    do:
      - loop:
          for:
            each: n
            in: .numbers
          while: ${ .total < 5 }
          do:
            - add:
                set:
                  total: ${ .total + $n }
    """
    And given the workflow input is:
    """yaml
    numbers: [ 1, 2, 3, 4 ]
    total: 0
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    total: 6
    """

  Scenario: Fork without compete returns every branch output in order
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: fork-all
      version: '1.0.0'
    do:
      - parallel:
          fork:
            branches:
              - slow:
                  do:
                    - pause:
                        wait: PT3S
                    - result:
                        set:
                          branch: slow
              - fast:
                  set:
                    branch: fast
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - branch: slow
    - branch: fast
    """
    And the workflow should finish 3 seconds

  Scenario: Emitted events carry extension attributes
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: emit-extensions
      version: '1.0.0'
    do:
      - announce:
          emit:
            event:
              with:
                source: https://orders.example.com
                type: com.example.order.placed.v1
                subject: ${ .order | tostring }
                tenant: acme
                data: ${ . }
    """
    And given the workflow input is:
    """yaml
    order: 7
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have a 'tenant' property with value:
    """yaml
    acme
    """
    And the workflow output should have a 'subject' property with value:
    """yaml
    '7'
    """
    And the workflow should have emitted 1 event of type 'com.example.order.placed.v1'

  Scenario: Run a subflow and use its output
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: parent
      version: '1.0.0'
    do:
      - child:
          run:
            workflow:
              namespace: test
              name: doubler
              version: '1.0.0'
              input:
                value: ${ .value }
    """
    And a subflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: doubler
      version: '1.0.0'
    do:
      - double:
          set:
            doubled: ${ .value * 2 }
    """
    And given the workflow input is:
    """yaml
    value: 21
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    doubled: 42
    """

  Scenario: Basic authentication from a secret
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: basic-secret
      version: '1.0.0'
    use:
      secrets: [ httpbinCredentials ]
      authentications:
        httpbin:
          basic:
            use: httpbinCredentials
    do:
      - login:
          call: http
          with:
            method: get
            endpoint:
              uri: https://httpbin.org/basic-auth/ada/lovelace
              authentication:
                use: httpbin
    """
    And the secret 'httpbinCredentials' is:
    """yaml
    username: ada
    password: lovelace
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    authenticated: true
    user: ada
    """

  Scenario: An undeclared secret cannot be read
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: missing-secret
      version: '1.0.0'
    use:
      secrets: [ apiKey ]
    do:
      - useIt:
          set:
            key: ${ $secrets.apiKey }
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/authorization
    status: 403
    """

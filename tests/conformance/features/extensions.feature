Feature: Extensions
  As an implementer of the workflow DSL
  I want use.extensions to run tasks before and after the tasks they extend
  So that workflows can log, audit or mock calls without changing their tasks

  Scenario: Log before and after every task without changing its data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: logging-extension
      version: '1.0.0'
    use:
      extensions:
        - logging:
            extend: all
            before:
              - sendLog:
                  call: http
                  with:
                    method: post
                    endpoint: https://log.example.com/collect
                    body:
                      message: ${ "Executing task '\($task.reference)'..." }
            after:
              - sendLog:
                  call: http
                  with:
                    method: post
                    endpoint: https://log.example.com/collect
                    body:
                      message: ${ "Executed task '\($task.reference)'..." }
    do:
      - getPet:
          call: http
          with:
            method: get
            endpoint: https://petstore.swagger.io/v2/pet/1
      - keepName:
          set:
            name: ${ .name }
    """
    And the endpoint 'POST https://log.example.com/collect' answers 202
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    name: Milou
    """
    And the lifecycle events should include in order:
    """yaml
    - task.started /do/0/getPet
    - task.started /use/extensions/0/logging/before/0/sendLog
    - task.completed /use/extensions/0/logging/after/0/sendLog
    - task.completed /do/0/getPet
    - task.started /do/1/keepName
    - task.started /use/extensions/0/logging/before/0/sendLog
    - task.completed /do/1/keepName
    """

  Scenario: Mock a service with then exit in before
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: mock-extension
      version: '1.0.0'
    use:
      extensions:
        - mockService:
            extend: call
            when: ${ $task.definition.with.endpoint.uri != null and ($task.definition.with.endpoint.uri | startswith("https://mocked.service.com")) }
            before:
              - mockResponse:
                  set:
                    statusCode: 200
                    content:
                      foo:
                        bar: baz
                  then: exit
    do:
      - callMocked:
          call: http
          with:
            method: get
            endpoint:
              uri: https://mocked.service.com/sample
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    statusCode: 200
    content:
      foo:
        bar: baz
    """

  Scenario: An extension whose condition does not hold leaves the task alone
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: unmatched-extension
      version: '1.0.0'
    use:
      extensions:
        - mockService:
            extend: call
            when: ${ $task.definition.with.endpoint | startswith("https://mocked.service.com") }
            before:
              - mockResponse:
                  set:
                    mocked: true
                  then: exit
    do:
      - getPet:
          call: http
          with:
            method: get
            endpoint: https://petstore.swagger.io/v2/pet/3
          output:
            as: "${ { name, mocked: (.mocked // false) } }"
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    name: Nemo
    mocked: false
    """

  Scenario: After tasks see the extended task's output and may end the workflow
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: after-extension
      version: '1.0.0'
    use:
      extensions:
        - guard:
            extend: set
            after:
              - stopWhenLarge:
                  switch:
                    - large:
                        when: ${ $task.output.total > 10 }
                        then: end
                    - small:
                        then: continue
    do:
      - first:
          set:
            total: 5
      - second:
          set:
            total: ${ .total + 10 }
      - third:
          set:
            total: 0
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    total: 15
    """

  Scenario: A composite extension runs around do and fork tasks only
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: composite-extension
      version: '1.0.0'
    use:
      extensions:
        - audit:
            extend: composite
            before:
              - note:
                  emit:
                    event:
                      with:
                        source: https://test.example.com
                        type: com.example.audit.v1
                        data:
                          task: ${ $task.name }
    do:
      - group:
          do:
            - inner:
                set:
                  a: 1
      - plain:
          set:
            b: 2
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    b: 2
    """
    And the workflow should have emitted 1 event of type 'com.example.audit.v1'

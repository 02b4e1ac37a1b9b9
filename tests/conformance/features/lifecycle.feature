Feature: Lifecycle Events
  As an implementer of the workflow DSL
  I want the runtime to produce workflow and task lifecycle events
  So that observers can follow every instance

  Scenario: A completed workflow reports its start, its tasks and its completion
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: lifecycle-complete
      version: '1.0.0'
    do:
      - first:
          set:
            a: 1
      - second:
          set:
            b: 2
    """
    When the workflow is executed
    Then the workflow should complete
    And the lifecycle events should include in order:
    """yaml
    - workflow.started
    - task.started /do/0/first
    - task.completed /do/0/first
    - task.started /do/1/second
    - task.completed /do/1/second
    - workflow.completed
    """

  Scenario: A faulted task and workflow are reported
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: lifecycle-fault
      version: '1.0.0'
    do:
      - fail:
          raise:
            error:
              type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
              status: 500
              title: Boom
    """
    When the workflow is executed
    Then the workflow should fault
    And the lifecycle events should include in order:
    """yaml
    - workflow.started
    - task.started /do/0/fail
    - task.faulted /do/0/fail
    - workflow.faulted
    """

  Scenario: Retries are reported
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: lifecycle-retry
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay: PT1S
              limit:
                attempt:
                  count: 1
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503, 200
    When the workflow is executed
    Then the workflow should complete
    And the lifecycle events should include in order:
    """yaml
    - task.started /do/0/fetch
    - task.faulted /do/0/fetch/try/0/get
    - task.retried /do/0/fetch
    - task.completed /do/0/fetch/try/0/get
    - task.completed /do/0/fetch
    - workflow.completed
    """

  Scenario: A skipped task produces no lifecycle events
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: lifecycle-skip
      version: '1.0.0'
    do:
      - maybe:
          if: ${ .enabled }
          set:
            ran: true
      - always:
          set:
            ran: false
    """
    And given the workflow input is:
    """yaml
    enabled: false
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    ran: false
    """
    And always should run first

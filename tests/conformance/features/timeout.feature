Feature: Timeouts
  As an implementer of the workflow DSL
  I want task and workflow timeouts to interrupt execution
  So that stuck work faults with the timeout error

  Scenario: Task timeout interrupts a long wait
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: task-timeout
      version: '1.0.0'
    do:
      - slow:
          wait: PT1H
          timeout:
            after: PT5S
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/slow
    """
    And the workflow should finish 5 seconds

  Scenario: Task that finishes in time is not interrupted
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: task-in-time
      version: '1.0.0'
    do:
      - quick:
          wait: PT2S
          timeout:
            after:
              seconds: 5
      - done:
          set:
            ok: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    ok: true
    """
    And the workflow should finish 2 seconds

  Scenario: Workflow timeout faults the whole workflow
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: workflow-timeout
      version: '1.0.0'
    timeout:
      after: PT30S
    do:
      - first:
          wait: PT20S
      - second:
          wait: PT20S
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    """
    And the workflow should finish 30 seconds

  Scenario: Reusable timeout referenced by name
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: reusable-timeout
      version: '1.0.0'
    use:
      timeouts:
        short:
          after: PT1S
    do:
      - slow:
          wait: PT1M
          timeout: short
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    instance: /do/0/slow
    """

  Scenario: A timeout can be caught like any error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: caught-timeout
      version: '1.0.0'
    do:
      - guarded:
          try:
            - slow:
                wait: PT1M
                timeout:
                  after: PT10S
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
            as: failure
            do:
              - record:
                  set:
                    timedOut: ${ $failure.status == 408 }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    timedOut: true
    """
    And the workflow should finish 10 seconds

  Scenario: Listen with a timeout faults when no event arrives
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-timeout
      version: '1.0.0'
    do:
      - awaitApproval:
          listen:
            to:
              one:
                with:
                  type: com.example.approved.v1
          timeout:
            after: PT1H
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/awaitApproval
    """
    And the workflow should finish 3600 seconds

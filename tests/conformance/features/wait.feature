Feature: Wait Task
  As an implementer of the workflow DSL
  I want wait tasks to pause on durable timers
  So that workflows resume at the right absolute time

  Scenario: Wait for an ISO 8601 duration
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: wait-iso
      version: '1.0.0'
    do:
      - pause:
          wait: PT1M30S
      - done:
          set:
            finished: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    finished: true
    """
    And the workflow should finish 90 seconds

  Scenario: Wait for an inline duration keeps the data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: wait-inline
      version: '1.0.0'
    do:
      - pause:
          wait:
            minutes: 1
            seconds: 5
            milliseconds: 500
    """
    And given the workflow input is:
    """yaml
    order: 42
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    order: 42
    """
    And the workflow should finish 65.5 seconds

  Scenario: Wait for a duration computed by an expression
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: wait-expression
      version: '1.0.0'
    do:
      - pause:
          wait: ${ .delay }
    """
    And given the workflow input is:
    """yaml
    delay: PT2H
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow should finish 7200 seconds

  Scenario: Consecutive waits add up
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: wait-twice
      version: '1.0.0'
    do:
      - first:
          wait: PT10S
      - second:
          wait:
            days: 1
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow should finish 86410 seconds

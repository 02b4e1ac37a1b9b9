Feature: Scheduled Workflows
  As an implementer of the workflow DSL
  I want scheduled definitions to run like any other once an instance starts
  So that the scheduler only decides when instances start and with what input

  Scenario: An event-driven scheduled workflow reads its triggering events from its input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: schedule-on-event
      version: '1.0.0'
    schedule:
      on:
        one:
          with:
            type: com.example.order.placed.v1
    do:
      - acknowledge:
          set:
            orderId: ${ $workflow.input[0].data.orderId }
            events: ${ $workflow.input | length }
    """
    And given the workflow input is:
    """yaml
    - specversion: '1.0'
      id: o-1
      source: https://shop.example.com
      type: com.example.order.placed.v1
      data:
        orderId: ORD-12345
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    orderId: ORD-12345
    events: 1
    """

  Scenario: A cron-scheduled workflow started directly runs its tasks
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: schedule-cron
      version: '1.0.0'
    schedule:
      cron: '0 0 * * *'
    do:
      - report:
          set:
            ran: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    ran: true
    """

  Scenario: An interval-scheduled workflow with a wait keeps its own timing
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: schedule-every
      version: '1.0.0'
    schedule:
      every:
        minutes: 15
    do:
      - settle:
          wait: PT1M
      - report:
          set:
            ran: true
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow should finish 60 seconds

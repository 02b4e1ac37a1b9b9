Feature: Subflows
  run.workflow runs a registered workflow as a child: its output is the task's output, its
  fault is an error the parent can catch, and await: false goes on at once.

  Scenario: A child's fault is an error the parent catches
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: careful-parent
      version: '1.0.0'
    do:
      - guarded:
          try:
            - child:
                run:
                  workflow:
                    namespace: test
                    name: failing-child
                    version: '1.0.0'
          catch:
            errors:
              with:
                type: https://example.com/errors/out-of-stock
            as: failure
            do:
              - note:
                  set:
                    caught: ${ $failure.detail }
    """
    And a subflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: failing-child
      version: '1.0.0'
    do:
      - fail:
          raise:
            error:
              type: https://example.com/errors/out-of-stock
              status: 409
              detail: no more widgets
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    caught: no more widgets
    """

  Scenario: An uncaught child fault faults the parent with the child's error type
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
              name: failing-child
              version: '1.0.0'
    """
    And a subflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: failing-child
      version: '1.0.0'
    do:
      - fail:
          raise:
            error:
              type: https://example.com/errors/out-of-stock
              status: 409
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://example.com/errors/out-of-stock
    status: 409
    """

  Scenario: await false goes on with the parent's own data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: fire-and-forget
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
            await: false
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
    value: 21
    """

Feature: Listen Task
  As an implementer of the workflow DSL
  I want listen tasks to consume events per their strategy
  So that workflows react to the outside world exactly once per event

  Scenario: Listen to one event and read its data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-one
      version: '1.0.0'
    do:
      - awaitPayment:
          listen:
            to:
              one:
                with:
                  type: com.example.payment.received.v1
    """
    And the event is published after 30 seconds:
    """yaml
    specversion: '1.0'
    id: evt-1
    source: https://payments.example.com
    type: com.example.payment.received.v1
    data:
      amount: 120
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - amount: 120
    """
    And the workflow should finish 30 seconds

  Scenario: Listen ignores events of other types
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-filter-type
      version: '1.0.0'
    do:
      - awaitPayment:
          listen:
            to:
              one:
                with:
                  type: com.example.payment.received.v1
    """
    And the event is published after 5 seconds:
    """yaml
    specversion: '1.0'
    id: evt-0
    source: https://payments.example.com
    type: com.example.payment.refused.v1
    data:
      amount: 1
    """
    And the event is published after 10 seconds:
    """yaml
    specversion: '1.0'
    id: evt-1
    source: https://payments.example.com
    type: com.example.payment.received.v1
    data:
      amount: 2
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - amount: 2
    """
    And the workflow should finish 10 seconds

  Scenario: Listen to all events waits for each filter
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-all
      version: '1.0.0'
    do:
      - awaitBoth:
          listen:
            to:
              all:
                - with:
                    type: com.example.packed.v1
                - with:
                    type: com.example.paid.v1
    """
    And the event is published after 3 seconds:
    """yaml
    specversion: '1.0'
    id: p-1
    source: https://shop.example.com
    type: com.example.paid.v1
    data: paid
    """
    And the event is published after 8 seconds:
    """yaml
    specversion: '1.0'
    id: k-1
    source: https://shop.example.com
    type: com.example.packed.v1
    data: packed
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [ paid, packed ]
    """
    And the workflow should finish 8 seconds

  Scenario: Listen to any event takes the first that matches
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-any
      version: '1.0.0'
    do:
      - awaitEither:
          listen:
            to:
              any:
                - with:
                    type: com.example.approved.v1
                - with:
                    type: com.example.rejected.v1
    """
    And the event is published after 7 seconds:
    """yaml
    specversion: '1.0'
    id: r-1
    source: https://review.example.com
    type: com.example.rejected.v1
    data:
      reason: incomplete
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - reason: incomplete
    """

  Scenario: Listen to any until a condition on the consumed events holds
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-until
      version: '1.0.0'
    do:
      - collect:
          listen:
            to:
              any:
                - with:
                    type: com.example.reading.v1
              until: ${ length >= 3 }
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: r1, source: https://sensor, type: com.example.reading.v1, data: 10}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: r2, source: https://sensor, type: com.example.reading.v1, data: 11}
    """
    And the event is published after 3 seconds:
    """yaml
    {specversion: '1.0', id: r3, source: https://sensor, type: com.example.reading.v1, data: 12}
    """
    And the event is published after 4 seconds:
    """yaml
    {specversion: '1.0', id: r4, source: https://sensor, type: com.example.reading.v1, data: 13}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [ 10, 11, 12 ]
    """
    And the workflow should finish 3 seconds

  Scenario: Read the whole envelope of the event
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-envelope
      version: '1.0.0'
    do:
      - awaitPayment:
          listen:
            to:
              one:
                with:
                  type: com.example.payment.received.v1
            read: envelope
          output:
            as: '.[0] | { id, source, amount: .data.amount }'
    """
    And the event is published:
    """yaml
    specversion: '1.0'
    id: evt-9
    source: https://payments.example.com
    type: com.example.payment.received.v1
    data:
      amount: 9
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    id: evt-9
    source: https://payments.example.com
    amount: 9
    """

  Scenario: Filter events with an expression on their data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-data-filter
      version: '1.0.0'
    do:
      - awaitFever:
          listen:
            to:
              one:
                with:
                  type: com.example.temperature.v1
                  data: ${ .celsius > 38 }
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: t1, source: https://ward, type: com.example.temperature.v1, data: {celsius: 37}}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: t2, source: https://ward, type: com.example.temperature.v1, data: {celsius: 39.5}}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - celsius: 39.5
    """
    And the workflow should finish 2 seconds

  Scenario: Run tasks for each consumed event
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-foreach
      version: '1.0.0'
    do:
      - collect:
          listen:
            to:
              all:
                - with:
                    type: com.example.a.v1
                - with:
                    type: com.example.b.v1
          foreach:
            item: event
            at: position
            do:
              - label:
                  set:
                    label: ${ "\($position):\($event.name)" }
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: a1, source: https://x, type: com.example.a.v1, data: {name: first}}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: b1, source: https://x, type: com.example.b.v1, data: {name: second}}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - label: '0:first'
    - label: '1:second'
    """

  Scenario: A workflow consumes the event it emitted
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: emit-then-listen
      version: '1.0.0'
    do:
      - announce:
          emit:
            event:
              with:
                source: https://orders.example.com
                type: com.example.order.placed.v1
                data:
                  order: ${ .order }
      - confirm:
          listen:
            to:
              one:
                with:
                  type: com.example.order.placed.v1
    """
    And given the workflow input is:
    """yaml
    order: 7
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - order: 7
    """

  Scenario: Process each event as it arrives until a condition holds
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: listen-stream
      version: '1.0.0'
    do:
      - watch:
          listen:
            to:
              any:
                - with:
                    type: com.example.reading.v1
              until: ${ length >= 2 }
          foreach:
            item: reading
            do:
              - double:
                  set:
                    value: ${ $reading * 2 }
    """
    And the event is published after 10 seconds:
    """yaml
    {specversion: '1.0', id: r1, source: https://sensor, type: com.example.reading.v1, data: 4}
    """
    And the event is published after 20 seconds:
    """yaml
    {specversion: '1.0', id: r2, source: https://sensor, type: com.example.reading.v1, data: 5}
    """
    And the event is published after 30 seconds:
    """yaml
    {specversion: '1.0', id: r3, source: https://sensor, type: com.example.reading.v1, data: 6}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - value: 8
    - value: 10
    """
    And the workflow should finish 20 seconds

Feature: Event Correlation
  As an implementer of the workflow DSL
  I want listen filters to correlate events
  So that an instance only consumes the events that belong to it

  Scenario: Correlate on an expected value taken from the input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: correlate-expect
      version: '1.0.0'
    do:
      - awaitShipment:
          listen:
            to:
              one:
                with:
                  type: com.example.shipped.v1
                correlate:
                  orderId:
                    from: ${ .data.orderId }
                    expect: ${ .orderId }
    """
    And given the workflow input is:
    """yaml
    orderId: B-2
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: s1, source: https://ship, type: com.example.shipped.v1, data: {orderId: A-1}}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: s2, source: https://ship, type: com.example.shipped.v1, data: {orderId: B-2}}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - orderId: B-2
    """
    And the workflow should finish 2 seconds

  Scenario: Correlate on a constant expected value
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: correlate-constant
      version: '1.0.0'
    do:
      - awaitRegion:
          listen:
            to:
              one:
                with:
                  type: com.example.alert.v1
                correlate:
                  region:
                    from: ${ .data.region }
                    expect: eu-west
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: a1, source: https://alerts, type: com.example.alert.v1, data: {region: us-east}}
    """
    And the event is published after 4 seconds:
    """yaml
    {specversion: '1.0', id: a2, source: https://alerts, type: com.example.alert.v1, data: {region: eu-west}}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - region: eu-west
    """
    And the workflow should finish 4 seconds

  Scenario: The first event fixes the correlation for the others
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: correlate-first
      version: '1.0.0'
    do:
      - awaitPair:
          listen:
            to:
              all:
                - with:
                    type: com.example.request.v1
                  correlate:
                    session:
                      from: ${ .data.session }
                - with:
                    type: com.example.response.v1
                  correlate:
                    session:
                      from: ${ .data.session }
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: q1, source: https://rpc, type: com.example.request.v1, data: {session: s-9}}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: p0, source: https://rpc, type: com.example.response.v1, data: {session: s-1}}
    """
    And the event is published after 3 seconds:
    """yaml
    {specversion: '1.0', id: p1, source: https://rpc, type: com.example.response.v1, data: {session: s-9}}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - session: s-9
    - session: s-9
    """
    And the workflow should finish 3 seconds

  Scenario: A redelivered event is consumed once
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: consume-once
      version: '1.0.0'
    do:
      - first:
          listen:
            to:
              one:
                with:
                  type: com.example.tick.v1
      - second:
          listen:
            to:
              one:
                with:
                  type: com.example.tick.v1
    """
    And the event is published after 1 seconds:
    """yaml
    {specversion: '1.0', id: t1, source: https://clock, type: com.example.tick.v1, data: 1}
    """
    And the event is published after 2 seconds:
    """yaml
    {specversion: '1.0', id: t1, source: https://clock, type: com.example.tick.v1, data: 1}
    """
    And the event is published after 5 seconds:
    """yaml
    {specversion: '1.0', id: t2, source: https://clock, type: com.example.tick.v1, data: 2}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [ 2 ]
    """
    And the workflow should finish 5 seconds

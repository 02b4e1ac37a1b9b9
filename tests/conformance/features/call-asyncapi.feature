Feature: AsyncAPI Call
  As an implementer of the workflow DSL
  I want call: asyncapi to publish and subscribe per the operation's document
  So that workflows exchange messages with the channels an AsyncAPI document describes

  Background:
    Given the endpoint 'GET https://fake.com/docs/asyncapi.json' answers 200 with:
    """yaml
    asyncapi: 3.0.0
    info: {title: chat, version: 1.0.0}
    servers:
      staging: {host: '{env}.fake.com:5672', protocol: amqp, variables: {env: {default: staging}}}
      socket: {host: ws.fake.com, protocol: ws}
    channels:
      notifications:
        address: user.notifications
        messages:
          note:
            correlationId: {location: '$message.header#/cid'}
      greetings:
        address: greetings
        servers: [{$ref: '#/servers/staging'}]
    operations:
      getNotifications: {action: receive, channel: {$ref: '#/channels/notifications'}}
      greet: {action: send, channel: {$ref: '#/channels/greetings'}}
    """

  Scenario: Publish a message to an operation's channel
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-publish, version: '1.0.0'}
    do:
      - publishGreetings:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: greet
            server: {name: staging, variables: {env: dev}}
            message:
              payload: {greetings: '${ "Hello, " + .name }'}
              headers: {foo: bar}
    """
    And the workflow input is:
    """yaml
    name: World
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    payload: {greetings: 'Hello, World'}
    headers: {foo: bar}
    """
    And the AsyncAPI channel 'greetings' should have received:
    """yaml
    - payload: {greetings: 'Hello, World'}
      headers: {foo: bar}
    """

  Scenario: Publish to an operation the document does not declare
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-unknown, version: '1.0.0'}
    do:
      - publish:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: shout
            message: {payload: {}}
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    status: 400
    """
    And the error detail should contain 'is not declared; declared: ['

  Scenario: Consume an amount of filtered messages
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-amount, version: '1.0.0'}
    do:
      - getNotifications:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: getNotifications
            subscription:
              filter: ${ .correlationId == $input.userId }
              consume:
                amount: 2
    """
    And the workflow input is:
    """yaml
    userId: u1
    """
    And the AsyncAPI channel 'user.notifications' delivers 1 second after subscribing:
    """yaml
    payload: {text: first}
    headers: {cid: u1}
    """
    And the AsyncAPI channel 'user.notifications' delivers 2 seconds after subscribing:
    """yaml
    payload: {text: not mine}
    headers: {cid: u2}
    """
    And the AsyncAPI channel 'user.notifications' delivers 3 seconds after subscribing:
    """yaml
    payload: {text: second}
    headers: {cid: u1}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - payload: {text: first}
      headers: {cid: u1}
      correlationId: u1
    - payload: {text: second}
      headers: {cid: u1}
      correlationId: u1
    """
    And the workflow should finish 3 seconds
    And no AsyncAPI subscription should be open

  Scenario: Consume while fewer messages than wanted were consumed
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-while, version: '1.0.0'}
    do:
      - getNotifications:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: getNotifications
            subscription:
              consume:
                while: '${ ($context.consumedMessages | length) < 2 }'
          output:
            as: '${ map(.payload.n) }'
    """
    And the AsyncAPI channel 'user.notifications' delivers 1 second after subscribing:
    """yaml
    payload: {n: 1}
    """
    And the AsyncAPI channel 'user.notifications' delivers 2 seconds after subscribing:
    """yaml
    payload: {n: 2}
    """
    And the AsyncAPI channel 'user.notifications' delivers 3 seconds after subscribing:
    """yaml
    payload: {n: 3}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [1, 2]
    """

  Scenario: Consume until a condition on the consumed messages holds
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-until, version: '1.0.0'}
    do:
      - getNotifications:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: getNotifications
            subscription:
              consume:
                until: '${ ($context.consumedMessages | map(.payload.n) | add) >= 3 }'
          output:
            as: '${ map(.payload.n) }'
    """
    And the AsyncAPI channel 'user.notifications' delivers 1 second after subscribing:
    """yaml
    payload: {n: 1}
    """
    And the AsyncAPI channel 'user.notifications' delivers 2 seconds after subscribing:
    """yaml
    payload: {n: 2}
    """
    And the AsyncAPI channel 'user.notifications' delivers 3 seconds after subscribing:
    """yaml
    payload: {n: 3}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [1, 2]
    """

  Scenario: Consume for a duration
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-for, version: '1.0.0'}
    do:
      - getNotifications:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: getNotifications
            subscription:
              consume:
                for: {seconds: 25}
                while: '${ true }'
          output:
            as: '${ map(.payload.n) }'
    """
    And the AsyncAPI channel 'user.notifications' delivers 10 seconds after subscribing:
    """yaml
    payload: {n: 1}
    """
    And the AsyncAPI channel 'user.notifications' delivers 20 seconds after subscribing:
    """yaml
    payload: {n: 2}
    """
    And the AsyncAPI channel 'user.notifications' delivers 30 seconds after subscribing:
    """yaml
    payload: {n: 3}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [1, 2]
    """
    And the workflow should finish 25 seconds
    And no AsyncAPI subscription should be open

  Scenario: Run tasks for each consumed message
    Given a workflow with definition:
    """yaml
    document: {dsl: '1.0.3', namespace: test, name: asyncapi-foreach, version: '1.0.0'}
    do:
      - getNotifications:
          call: asyncapi
          with:
            document: {endpoint: https://fake.com/docs/asyncapi.json}
            operation: getNotifications
            protocol: amqp
            subscription:
              consume:
                amount: 2
              foreach:
                item: message
                do:
                  - publishCloudEvent:
                      emit:
                        event:
                          with:
                            source: https://serverlessworkflow.io/samples
                            type: io.serverlessworkflow.samples.asyncapi.message.consumed.v1
                            data:
                              message: '${ $message.payload }'
                output:
                  as: '${ .data.message.n }'
    """
    And the AsyncAPI channel 'user.notifications' delivers 1 second after subscribing:
    """yaml
    payload: {n: 1}
    """
    And the AsyncAPI channel 'user.notifications' delivers 2 seconds after subscribing:
    """yaml
    payload: {n: 2}
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    [1, 2]
    """
    And the workflow should have emitted 2 events of type 'io.serverlessworkflow.samples.asyncapi.message.consumed.v1'

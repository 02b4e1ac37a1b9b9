@real-time
Feature: gRPC Call
  As an implementer of the workflow DSL
  I want call: grpc to invoke unary methods of a gRPC service described by a proto
  So that workflows reach gRPC services with the same errors, retries and policies as HTTP

  Background:
    Given a gRPC server serving the proto 'app/greet.proto':
    """proto
    syntax = "proto3";
    package GreeterApi;
    service Greeter {
      rpc SayHello (HelloRequest) returns (HelloReply);
      rpc SayHellos (HelloRequest) returns (stream HelloReply);
    }
    message HelloRequest { string name = 1; }
    message HelloReply { string message = 1; }
    """

  Scenario: The official example calls SayHello with the proto from a file
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-example
      version: '0.1.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
            arguments:
              name: ${ .user.preferredDisplayName }
    """
    And given the workflow input is:
    """yaml
    user:
      preferredDisplayName: Ada
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' greets by name
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    message: Hello, Ada
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have received:
    """yaml
    name: Ada
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have received metadata 'idempotency-key' ending with '/do/0/greet'

  Scenario: Server reflection describes the service
    Given the gRPC server offers reflection
    And the gRPC calls use server reflection
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-reflection
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: https://protos.example.com/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
            arguments:
              name: Reflected
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' greets by name
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    message: Hello, Reflected
    """

  Scenario: Bearer authentication travels as the authorization metadata
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-bearer
      version: '1.0.0'
    use:
      secrets: [apitoken]
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
              authentication:
                bearer:
                  token: ${ $secrets.apitoken }
            method: SayHello
            arguments:
              name: Secure
          output:
            as:
              message: ${ .message }
              scheme: ${ $authorization.scheme }
    """
    And the secret 'apitoken' is:
    """yaml
    t0ken-123
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' greets by name
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    message: Hello, Secure
    scheme: Bearer
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have received metadata 'authorization' with value 'Bearer t0ken-123'

  Scenario: An unavailable service is retried until it answers
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-retry
      version: '1.0.0'
    do:
      - greet:
          try:
            - call-it:
                call: grpc
                with:
                  proto:
                    endpoint: file://app/greet.proto
                  service:
                    name: GreeterApi.Greeter
                    host: localhost
                    port: 5011
                  method: SayHello
                  arguments:
                    name: Patient
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
                status: 503
            retry:
              delay:
                milliseconds: 10
              limit:
                attempt:
                  count: 5
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' answers UNAVAILABLE, UNAVAILABLE, OK with:
    """yaml
    message: finally
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    message: finally
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have been called 3 times

  Scenario: A denied call is caught as an authorization error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-denied
      version: '1.0.0'
    do:
      - greet:
          try:
            - call-it:
                call: grpc
                with:
                  proto:
                    endpoint: file://app/greet.proto
                  service:
                    name: GreeterApi.Greeter
                    host: localhost
                    port: 5011
                  method: SayHello
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/authorization
                status: 403
            as: failure
            do:
              - note:
                  set:
                    denied: ${ $failure.title }
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' answers PERMISSION_DENIED
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    denied: gRPC PERMISSION_DENIED
    """

  Scenario: An invalid argument faults with a validation error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-invalid
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
            arguments:
              name: ''
    """
    And the gRPC method 'GreeterApi.Greeter/SayHello' answers INVALID_ARGUMENT
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
    status: 400
    """
    And the error detail should contain 'failed with INVALID_ARGUMENT: the server answers INVALID_ARGUMENT'

  Scenario: An argument the request message lacks is refused before the call
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-unknown-field
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
            arguments:
              nickname: Ada
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
    status: 400
    """
    And the error detail should contain 'no field named "nickname"'
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have been called 0 times

  Scenario: A streaming method is a configuration error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-streaming
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHellos
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    """
    And the error detail should contain 'is server-streaming; call: grpc calls unary methods only'

  Scenario: The default outbound policy refuses a loopback service
    Given the gRPC calls go through the default outbound policy
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-refused
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
    status: 403
    """
    And the error detail should contain 'is a loopback address; add 127.0.0.1 or a range holding it'
    And the gRPC method 'GreeterApi.Greeter/SayHello' should have been called 0 times

  Scenario: A proto path cannot leave the proto directory
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-escape
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/../../etc/passwd
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    """
    And the error detail should contain 'resolves outside workflows.calls.grpc.protoDirectory'

  Scenario: A service with gRPC calls disabled refuses them
    Given gRPC calls are disabled
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: grpc-disabled
      version: '1.0.0'
    do:
      - greet:
          call: grpc
          with:
            proto:
              endpoint: file://app/greet.proto
            service:
              name: GreeterApi.Greeter
              host: localhost
              port: 5011
            method: SayHello
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    """
    And the error detail should contain 'set workflows.calls.grpc.enabled: true'

Feature: Containers
  As an implementer of the workflow DSL
  I want run.container tasks to run their image through the configured runtime
  So that workflows get the process result of a container, bounded and cleaned up

  # The images are the busybox-static stand-ins for alpine and hello-world that the test
  # session builds; these scenarios run on the real clock.

  Background:
    Given podman runs the containers

  Scenario: A command reads stdin and its arguments
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-stdin
      version: '1.0.0'
    do:
      - setInput:
          set:
            message: Hello World
      - runContainer:
          input:
            from: ${ .message }
          run:
            container:
              image: alpine
              command: |
                input=$(cat)
                echo "STDIN was: $input"
                echo "ARGS are $1 $2"
              stdin: ${ . }
              arguments: [Foo, Bar]
              lifetime:
                cleanup: always
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    "STDIN was: Hello World\nARGS are Foo Bar\n"
    """

  Scenario: Return all gives the exit code and both streams
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-all
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: echo out; echo err >&2; exit 3
              lifetime:
                cleanup: always
            return: all
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    code: 3
    stdout: "out\n"
    stderr: "err\n"
    """

  Scenario: The container sees the environment its task declares
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-environment
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: echo "$GREETING from $PLACE"
              environment:
                GREETING: ${ .greeting }
                PLACE: the container
              lifetime:
                cleanup: always
    """
    And the workflow input is:
    """yaml
    greeting: Hello
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    "Hello from the container\n"
    """

  Scenario: A task timeout stops the container
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-timeout
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: sleep 60
              lifetime:
                cleanup: always
          timeout:
            after: PT1S
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/runContainer
    """

  Scenario: The service's container timeout stops the container
    Given podman runs the containers with {timeout: 1}
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-service-timeout
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: sleep 60
              lifetime:
                cleanup: always
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    instance: /do/0/runContainer
    """
    And the error detail should contain 'raise workflows.run.container.timeout'

  Scenario: A missing image is not pulled with pull policy never
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-missing-image
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: localhost/no-such-image
              pullPolicy: never
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    instance: /do/0/runContainer
    """
    And the error detail should contain 'pullPolicy is never'

  Scenario: A host path outside the allowed directories is refused
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-volume
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: cat /host/etc/shadow
              volumes:
                /etc: /host/etc
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    instance: /do/0/runContainer
    """
    And the error detail should contain 'workflows.run.container.allowedHostPaths'

  Scenario: A container that is not awaited outputs the task's input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-detached
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: echo detached
              lifetime:
                cleanup: always
            await: false
    """
    And the workflow input is:
    """yaml
    kept: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    kept: true
    """

  Scenario: A failed container can be caught by its exit code
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: container-exit-code
      version: '1.0.0'
    do:
      - runContainer:
          run:
            container:
              image: alpine
              command: exit 7
              lifetime:
                cleanup: always
            return: code
      - check:
          switch:
            - failed:
                when: ${ . != 0 }
                then: report
            - default:
                then: end
      - report:
          set:
            failedWith: ${ . }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    failedWith: 7
    """

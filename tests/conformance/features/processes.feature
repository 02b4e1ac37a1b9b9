@real-time
Feature: Shell and script processes
  run.shell and run.script tasks run sandboxed local processes: stdin, arguments, environment,
  and what the task returns (stdout, stderr, code, all, none).

  Scenario: A shell command reads its stdin and arguments
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: shell-stdin
      version: '1.0.0'
    do:
      - greet:
          run:
            shell:
              command: 'read name; echo "hello $name, $1 and $2"'
              stdin: ${ .name }
              arguments: [Foo, Bar]
    """
    And local processes run the shell and script tasks
    And given the workflow input is:
    """yaml
    name: Ada
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    "hello Ada, Foo and Bar\n"
    """

  Scenario: return all gives the code, stdout and stderr of a failing command
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: shell-all
      version: '1.0.0'
    do:
      - fail:
          run:
            shell:
              command: 'echo out; echo err >&2; exit 3'
            return: all
    """
    And local processes run the shell and script tasks
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    code: 3
    stdout: "out\n"
    stderr: "err\n"
    """

  Scenario: A failing command faults the task when its stdout is asked for
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: shell-fails
      version: '1.0.0'
    do:
      - fail:
          run:
            shell:
              command: 'echo broken >&2; exit 2'
    """
    And local processes run the shell and script tasks
    When the workflow is executed
    Then the workflow should fault
    And the error detail should contain 'exited with code 2; stderr: broken'

  Scenario: The environment holds only what the task declares
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: shell-environment
      version: '1.0.0'
    do:
      - env:
          run:
            shell:
              command: 'echo "$GREETING ${DATABASE_PASSWORD:-unset}"'
              environment:
                GREETING: ${ .greeting }
    """
    And local processes run the shell and script tasks
    And given the workflow input is:
    """yaml
    greeting: hi
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    "hi unset\n"
    """

  Scenario: A Python script reads its arguments and returns its exit code
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: python-code
      version: '1.0.0'
    do:
      - count:
          run:
            script:
              language: python
              code: |
                import sys
                sys.exit(len(sys.argv) - 1)
              arguments: [a, b, c]
            return: code
    """
    And local processes run the shell and script tasks
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    3
    """

  Scenario: A JavaScript module reads stdin
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: javascript-module
      version: '1.0.0'
    do:
      - shout:
          run:
            script:
              language: javascript
              stdin: quiet
              code: |
                import { readFileSync } from 'node:fs';
                console.log(readFileSync(process.stdin.fd, 'utf8').toUpperCase());
    """
    And local processes run the shell and script tasks
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    "QUIET\n"
    """

  Scenario: return none gives null
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: shell-none
      version: '1.0.0'
    do:
      - quiet:
          run:
            shell:
              command: 'echo ignored'
            return: none
    """
    And local processes run the shell and script tasks
    When the workflow is executed
    Then the workflow output should be:
    """yaml
    null
    """

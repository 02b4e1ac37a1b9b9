Feature: Retry Backoff
  As an implementer of the workflow DSL
  I want caught errors to be retried with the configured backoff
  So that transient failures heal on durable timers

  Scenario: Constant backoff retries at a fixed delay
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-constant
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay:
                seconds: 2
              backoff:
                constant: {}
              limit:
                attempt:
                  count: 5
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503, 503, 200 with:
    """yaml
    healthy: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    healthy: true
    """
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 2, 4

  Scenario: Linear backoff grows the delay by the base each attempt
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-linear
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay: PT1S
              backoff:
                linear: {}
              limit:
                attempt:
                  count: 5
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503, 503, 503, 200 with:
    """yaml
    healthy: true
    """
    When the workflow is executed
    Then the workflow should complete
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 1, 3, 6

  Scenario: Exponential backoff doubles the delay each attempt
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-exponential
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay:
                seconds: 1
              backoff:
                exponential: {}
              limit:
                attempt:
                  count: 5
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503, 503, 503, 503, 200 with:
    """yaml
    healthy: true
    """
    When the workflow is executed
    Then the workflow should complete
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 1, 3, 7, 15

  Scenario: Exhausted attempts fault with the last error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-exhausted
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay: PT1S
              limit:
                attempt:
                  count: 2
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
    status: 503
    instance: /do/0/fetch/try/0/get
    """
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 1, 2

  Scenario: Reusable retry policy referenced by name
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-reusable
      version: '1.0.0'
    use:
      retries:
        patient:
          delay:
            seconds: 10
          limit:
            attempt:
              count: 3
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry: patient
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503, 200 with:
    """yaml
    healthy: true
    """
    When the workflow is executed
    Then the workflow should complete
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 10

  Scenario: Retry only when its condition holds
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-when
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
            retry:
              when: ${ $error.status >= 500 }
              delay: PT1S
              limit:
                attempt:
                  count: 3
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 404
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    status: 404
    """
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0

  Scenario: Total retry duration limits the retries
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: retry-duration
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 503
            retry:
              delay: PT4S
              limit:
                duration: PT10S
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 503
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    status: 503
    """
    And the endpoint 'GET https://flaky.example.com/status' should have been called at seconds 0, 4, 8

  Scenario: Catch without retry handles the error with its own tasks
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: catch-do
      version: '1.0.0'
    do:
      - fetch:
          try:
            - get:
                call: http
                with:
                  method: get
                  endpoint: https://flaky.example.com/status
          catch:
            errors:
              with:
                status: 500
            when: ${ $error.instance == "/do/0/fetch/try/0/get" }
            do:
              - fallback:
                  set:
                    healthy: unknown
    """
    And the endpoint 'GET https://flaky.example.com/status' answers 500
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    healthy: unknown
    """

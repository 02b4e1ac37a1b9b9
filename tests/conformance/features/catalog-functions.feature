Feature: Cataloged and Custom Functions
  As an implementer of the workflow DSL
  I want calls of functions from catalogs, URIs and use.functions to run
  So that workflows reuse tasks defined elsewhere

  Scenario: Call a function of a declared catalog
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: catalog-call
      version: '1.0.0'
    use:
      catalogs:
        shared:
          endpoint:
            uri: https://catalog.example.com/workflows
    do:
      - greet:
          call: greet:1.0.0@shared
          with:
            name: ${ .user }
    """
    And given the workflow input is:
    """yaml
    user: Ada
    """
    And the endpoint 'GET https://catalog.example.com/workflows/functions/greet/1.0.0/function.yaml' answers 200 with:
    """yaml
    input:
      schema:
        document:
          type: object
          properties:
            name:
              type: string
          required: [ name ]
    output:
      schema:
        document:
          type: string
    set: ${ "Hello, " + .name + "!" }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    Hello, Ada!
    """

  Scenario: Call a function document by its GitHub URI
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: uri-call
      version: '1.0.0'
    do:
      - fetchPet:
          call: https://github.com/acme/functions/tree/main/functions/get-pet/1.0.0/function.yaml
          with:
            petId: 1
    """
    And the endpoint 'GET https://raw.githubusercontent.com/acme/functions/refs/heads/main/functions/get-pet/1.0.0/function.yaml' answers 200 with:
    """yaml
    call: http
    with:
      method: get
      endpoint: https://petstore.swagger.io/v2/pet/{petId}
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have a 'name' property with value:
    """yaml
    Milou
    """

  Scenario: Arguments that break the function's input schema fault the call
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: catalog-invalid-input
      version: '1.0.0'
    use:
      catalogs:
        shared:
          endpoint: https://catalog.example.com/workflows
    do:
      - greet:
          call: greet:1.0.0@shared
          with:
            name: 42
    """
    And the endpoint 'GET https://catalog.example.com/workflows/functions/greet/1.0.0/function.yaml' answers 200 with:
    """yaml
    input:
      schema:
        document:
          type: object
          properties:
            name:
              type: string
    set: ${ .name }
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
    """

  Scenario: A function document that is not a valid task is refused
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: catalog-invalid-document
      version: '1.0.0'
    use:
      catalogs:
        shared:
          endpoint: https://catalog.example.com/workflows
    do:
      - greet:
          call: greet:2.0.0@shared
    """
    And the endpoint 'GET https://catalog.example.com/workflows/functions/greet/2.0.0/function.yaml' answers 200 with:
    """yaml
    wait: soon
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/configuration
    instance: /do/0/greet
    """
    And the error detail should contain 'is not a valid task definition: /wait'

  Scenario: A function missing from its catalog faults with a communication error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: catalog-missing
      version: '1.0.0'
    use:
      catalogs:
        shared:
          endpoint: https://catalog.example.com/workflows
    do:
      - greet:
          call: nothing:1.0.0@shared
    """
    And the endpoint 'GET https://catalog.example.com/workflows/functions/nothing/1.0.0/function.yaml' answers 404
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
    status: 404
    """

  Scenario: A declared function runs with the call's arguments as its input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: test
      name: inline-function
      version: '1.0.0'
    use:
      functions:
        getPetById:
          input:
            schema:
              document:
                type: object
                properties:
                  petId:
                    type: integer
                required: [ petId ]
          call: http
          with:
            method: get
            endpoint: https://petstore.swagger.io/v2/pet/{petId}
    do:
      - getPet:
          call: getPetById
          with:
            petId: 2
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have a 'name' property with value:
    """yaml
    Garfield
    """

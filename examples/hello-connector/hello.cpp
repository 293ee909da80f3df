// The smallest complete Syncwarden connector: a source that greets the
// people named in its settings. Build it against the installed SDK.
#include <syncwarden/connector.hpp>

#include <string>

class hello final : public syncwarden::sdk::connector {
public:
    hello(const syncwarden::sdk::host& h, const sw_create_args& args) : connector(h, args) {
        builder_.entity("greetings", "id").field("name", SW_TYPE_STRING, SW_FIELD_REQUIRED).field("text");
        contract_ = &builder_.build();
    }

    const sw_contract& contract() override { return *contract_; }

    void extract(const std::vector<std::string>&) override {
        syncwarden::sdk::batch_writer out(host_api(), "greetings", SW_MODE_BULK);
        for (int i = 0;; ++i) {
            auto name = host_api().config("/names/" + std::to_string(i));  // settings.names[i]
            if (!name) break;
            out.add("hello-" + std::to_string(i + 1), {*name, "Hello, " + *name + "!"});
        }
        out.flush();
    }

private:
    syncwarden::sdk::contract_builder builder_;
    const sw_contract* contract_ = nullptr;
};

SW_CONNECTOR(hello, "hello-connector", "1.0.0", SW_CAP_SOURCE, "greets the names in its settings")
